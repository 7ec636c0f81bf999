"""Placement groups on every runtime: reservation (all bundles or none), tasks and actors in
bundles with exact accounting, pending groups, removal, names, capture_child_tasks."""
import time

import pytest

from raylite.exceptions import GetTimeoutError, RayActorError, TaskPlacementGroupRemoved
from raylite.util import placement_group as pg_module
from raylite.util.placement_group import (PlacementGroup, get_current_placement_group,
                                          get_placement_group, placement_group,
                                          placement_group_table, remove_placement_group)
from raylite.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup

def _group(pg, name):
    """The part of available_resources() named for the group (`name`: "CPU_group_0" ...)."""
    return f"{name}_{pg.id.hex()}"


def _settled(ray, ok, bound=30.0):
    """available_resources() once ok(it) holds: Ray ends a previous test's actors
    asynchronously, and their CPUs come back a little later (at most `bound` seconds)."""
    deadline = time.monotonic() + bound
    while not ok(free := ray.available_resources()):
        assert time.monotonic() < deadline, f"resources did not settle: {free}"
        time.sleep(0.05)
    return free


def _where():
    import raylite

    ctx = raylite.get_runtime_context()
    current = get_current_placement_group()
    assert ctx.get_placement_group_id() == (current.id.hex() if current else None)
    assert ctx.current_placement_group_id == (current.id if current else None)
    return sorted(ctx.get_assigned_resources()), current


def test_ready_reserves_and_tasks_run_in_bundles(ray):
    pg = placement_group([{"CPU": 1}, {"CPU": 2, "custom": 1}], strategy="PACK")
    assert ray.get(pg.ready(), timeout=30) == pg
    assert pg.wait(30) is True
    assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 2.0, "custom": 1.0}]
    assert pg.bundle_count == 2
    free = _settled(ray, lambda free: free.get("CPU") == 1  # Ray frees a killed actor's later,
                    and _group(pg, "CPU_group_1") in free)    # and reports a group's a little later
    assert free["CPU"] == 1 and free["custom"] == 1            # the bundles left the node's pool
    assert free[_group(pg, "CPU_group_1")] == 2 and free[_group(pg, "CPU_group")] == 3
    assert ray.cluster_resources()["CPU"] == 4

    where = ray.remote(num_cpus=2, resources={"custom": 1})(_where)
    _, current = ray.get(where.options(scheduling_strategy=InGroup(pg, 1)).remote())
    assert current == pg
    assert get_current_placement_group() is None              # a driver is in no group
    anywhere = ray.remote(num_cpus=1)(_where)
    assert ray.get(anywhere.options(scheduling_strategy=InGroup(pg)).remote())[1] == pg
    row = placement_group_table(pg)
    assert row["state"] == "CREATED" and row["strategy"] == "PACK"
    assert row["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 2.0, "custom": 1.0}}
    assert len(set(row["bundles_to_node_id"].values())) == 1
    assert pg.id.hex() in placement_group_table()
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"


@pytest.mark.raylite_only("Ray 2.60's get_assigned_resources() gives the plain names (CPU, "
                          "custom) in a bundle")
def test_assigned_resources_in_a_bundle_are_named_as_the_bundle_s(ray):
    pg = placement_group([{"CPU": 1}, {"CPU": 2, "custom": 1}])
    where = ray.remote(num_cpus=2, resources={"custom": 1})(_where)
    names, _ = ray.get(where.options(scheduling_strategy=InGroup(pg, 1)).remote())
    assert names == sorted([_group(pg, "CPU_group_1"), _group(pg, "CPU_group"),
                            _group(pg, "custom_group_1"), _group(pg, "custom_group"),
                            _group(pg, "bundle_group_1"), _group(pg, "bundle_group")])
    remove_placement_group(pg)


def test_actors_in_a_bundle_are_counted_exactly(ray):
    pg = placement_group([{"CPU": 2}, {"CPU": 1}])
    assert pg.wait(30)

    @ray.remote(num_cpus=1)
    class A:
        def where(self):
            return _where()

    a = A.options(scheduling_strategy=InGroup(pg, 0)).remote()
    b = A.options(scheduling_strategy=InGroup(pg, 0)).remote()
    assert ray.get(a.where.remote())[1] == pg and ray.get(b.where.remote())[1] == pg
    free = _settled(ray, lambda free: free.get("CPU") == 1)
    assert free.get(_group(pg, "CPU_group_0"), 0) == 0       # bundle 0 is full
    assert free[_group(pg, "CPU_group_1")] == 1 and free[_group(pg, "CPU_group")] == 1
    assert free["CPU"] == 1                                   # the node's own pool: untouched
    ray.kill(a)
    c = A.options(scheduling_strategy=InGroup(pg, 0)).remote()  # a's place is free again
    assert ray.get(c.where.remote())[1] == pg
    remove_placement_group(pg)


def test_a_task_in_a_gpu_bundle_gets_the_bundle_s_gpu(ray):
    pg = placement_group([{"CPU": 1, "GPU": 1}])
    assert pg.wait(30)
    assert ray.available_resources().get("GPU", 0) == 0
    gpus = ray.remote(num_cpus=1, num_gpus=1)(lambda: ray.get_gpu_ids())
    assert ray.get(gpus.options(scheduling_strategy=InGroup(pg, 0)).remote()) == [0]
    remove_placement_group(pg)


@pytest.mark.raylite_only("raylite's warning (Ray's autoscaler reports such groups its own way)")
def test_a_group_that_cannot_be_placed_warns_once(ray, capfd):
    pg = placement_group([{"CPU": 3}, {"CPU": 3}], strategy="STRICT_PACK")
    spread = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")  # one node
    assert pg.wait(0.2) is False and spread.wait(0.2) is False
    err = capfd.readouterr().err
    assert err.count("cannot be placed") == 2, err           # once per group
    assert "STRICT_PACK" in err and "STRICT_SPREAD" in err
    remove_placement_group(pg)
    remove_placement_group(spread)


def test_a_group_that_cannot_be_placed_stays_pending(ray):
    pg = placement_group([{"CPU": 3}, {"CPU": 3}], strategy="STRICT_PACK")
    assert pg.wait(0.2) is False
    with pytest.raises(GetTimeoutError):
        ray.get(pg.ready(), timeout=0.2)
    assert placement_group_table(pg)["state"] == "PENDING"
    assert placement_group_table(pg)["bundles_to_node_id"] == {}
    spread = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")  # one node
    assert spread.wait(0.2) is False
    fits = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")  # SPREAD may share
    assert fits.wait(30)
    remove_placement_group(pg)
    remove_placement_group(spread)
    assert placement_group_table(pg)["state"] == "REMOVED"
    remove_placement_group(fits)


def test_a_group_waits_for_resources_actors_hold(ray):
    @ray.remote(num_cpus=3)
    class Big:
        def ping(self):
            return 1

    big = Big.remote()
    assert ray.get(big.ping.remote()) == 1
    pg = placement_group([{"CPU": 2}])
    assert pg.wait(0.3) is False                               # fits the node, not now
    ray.kill(big)
    assert pg.wait(30) is True
    _settled(ray, lambda free: free.get("CPU") == 2)          # fails past its bound
    remove_placement_group(pg)


def test_removal_frees_the_bundles_and_ends_what_ran_there(ray):
    pg = placement_group([{"CPU": 2}])
    assert pg.wait(30)

    @ray.remote(num_cpus=1)
    class A:
        def ping(self):
            return "pong"

    a = A.options(scheduling_strategy=InGroup(pg, 0), max_restarts=3).remote()
    assert ray.get(a.ping.remote()) == "pong"
    remove_placement_group(pg)                                 # asynchronous, as in Ray:
    with pytest.raises(RayActorError):                         # a call may beat the kill
        for _ in range(3000):
            ray.get(a.ping.remote(), timeout=30)
            time.sleep(0.01)
    with pytest.raises(RayActorError):
        ray.get(a.ping.remote(), timeout=30)                  # ended for good, no restart
    _settled(ray, lambda free: free.get("CPU") == 4)          # fails past its bound
    assert not [k for k in ray.available_resources() if pg.id.hex() in k]
    remove_placement_group(pg)                                 # twice: nothing more to do


@pytest.mark.raylite_only("a task in a removed group waits for ever on Ray 2.60")
def test_a_task_in_a_removed_group_fails(ray):
    pg = placement_group([{"CPU": 2}])
    assert pg.wait(30)
    remove_placement_group(pg)
    f = ray.remote(num_cpus=1)(_where)
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(f.options(scheduling_strategy=InGroup(pg)).remote(), timeout=30)


def test_names_and_lifetimes(ray):
    pg = placement_group([{"CPU": 1}], name="workers", lifetime="detached")
    assert get_placement_group("workers") == pg
    assert get_placement_group("workers").bundle_specs == [{"CPU": 1.0}]
    with pytest.raises(ValueError, match="exists already"):
        placement_group([{"CPU": 1}], name="workers")
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="Failed to look up placement group with name"):
        get_placement_group("workers")
    again = placement_group([{"CPU": 1}], name="workers")     # the name is free again
    assert again.wait(30)
    remove_placement_group(again)


def test_bad_arguments_say_what_is_wrong(ray):
    for bundles, match in [([], "non-empty list"), ([{}], "empty or only zeros"),
                           ([{"CPU": 0}], "empty or only zeros"), ([{"CPU": -1}], ">= 0"),
                           ("CPU", "non-empty list"), ([["CPU", 1]], "must be a dict")]:
        with pytest.raises(ValueError, match=match):
            placement_group(bundles)
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")
    pg = placement_group([{"CPU": 1}, {"CPU": 2}])
    with pytest.raises(ValueError, match="out of range"):
        InGroup(pg, 2)
    with pytest.raises(TypeError, match="PlacementGroup"):
        InGroup("pg")
    f = ray.remote(num_cpus=2)(_where)
    with pytest.raises(ValueError, match="cannot fit into bundle 0"):
        f.options(scheduling_strategy=InGroup(pg, 0)).remote()
    with pytest.raises(ValueError, match="cannot fit into any bundle"):
        ray.remote(num_cpus=3)(_where).options(scheduling_strategy=InGroup(pg)).remote()
    remove_placement_group(pg)


def _child_group():
    import raylite

    @raylite.remote(num_cpus=1)
    def child():
        return get_current_placement_group()

    capture = raylite.get_runtime_context().should_capture_child_tasks_in_placement_group
    return raylite.get(child.remote()), capture


def test_capture_child_tasks(ray):
    pg = placement_group([{"CPU": 2}])
    assert pg.wait(30)
    parent = ray.remote(num_cpus=1)(_child_group)
    captured = parent.options(scheduling_strategy=InGroup(pg, 0, True)).remote()
    assert ray.get(captured, timeout=60) == (pg, True)
    loose = parent.options(scheduling_strategy=InGroup(pg, 0)).remote()
    assert ray.get(loose, timeout=60) == (None, False)
    assert ray.get_runtime_context().should_capture_child_tasks_in_placement_group  # a driver

    @ray.remote(num_cpus=0)
    class Spawner:
        def child_group(self):
            return _child_group()

    s = Spawner.options(scheduling_strategy=InGroup(pg, 0, True)).remote()
    assert ray.get(s.child_group.remote(), timeout=60) == (pg, True)
    remove_placement_group(pg)


def test_public_names_as_ray_has_them(ray):
    import raylite.util as util

    pg = util.placement_group([{"CPU": 1}])
    assert isinstance(pg, PlacementGroup) and pg_module([{"CPU": 1}]).bundle_count == 1
    assert util.get_current_placement_group() is None
    assert pg.id.hex() in util.placement_group_table()
    util.remove_placement_group(pg)
