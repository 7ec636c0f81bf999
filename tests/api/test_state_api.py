"""raylite.util.state on every runtime: rows in Ray's schema, filters before the limit, partial
results said, attribute and item access, get_* and summarize_*."""
import os
import time
import warnings

import pytest

import raylite
from raylite.util import state

NOT_ON_RAY = pytest.mark.raylite_only("raylite.util.state asks raylite's daemons; on Ray it "
                                      "reads Ray's GCS or says what it needs: test_ray_state.py")

@NOT_ON_RAY
def test_actors_listed_got_and_filtered(ray):
    @ray.remote
    class Counter:
        def ping(self):
            return 1

    c = Counter.options(name="counter").remote()
    ray.get(c.ping.remote())
    [a] = state.list_actors(filters=[("class_name", "=", "Counter")])
    assert a.state == a["state"] == "ALIVE" and a.name == "counter" and isinstance(a.pid, int)
    assert a.node_id == state.list_nodes()[0].node_id
    assert state.list_actors(filters=[("state", "=", "dead")]) == []
    got = state.get_actor(a.actor_id)
    assert got.class_name == "Counter" and got.num_restarts == 0 and got.is_detached is False
    assert state.get_actor("00" * 16) is None
    hosts = state.list_workers(filters=[("actor_id", "=", a.actor_id)], detail=True)
    if hosts:  # a cluster: the actor's worker process (local mode has none)
        assert state.get_worker(hosts[0].worker_id).pid == a.pid == hosts[0].pid
    ray.kill(c)
    deadline = time.monotonic() + 10
    while state.get_actor(a.actor_id).state != "DEAD" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.summarize_actors()["cluster"]["summary"]["Counter"]["state_counts"] == {"DEAD": 1}


@NOT_ON_RAY
def test_objects_filter_then_limit_and_say_what_was_left_out(ray):
    refs = [ray.put(i) for i in range(12)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = state.list_objects(filters=[("task_status", "=", "FINISHED")], limit=5)
    assert len(got) == 5 and got.total >= 12 and got.partial
    assert any("more matched but were left out by the limit (5)" in str(w.message)
               for w in caught)
    ids = {r.object_id for r in state.list_objects(limit=None)}
    assert {r.hex() for r in refs} <= ids
    [rec] = state.get_objects(refs[3].hex())
    assert rec.object_size > 0 and rec.reference_type == "LOCAL_REFERENCE"
    summary = state.summarize_objects()["cluster"]
    assert summary["total_objects"] >= 12 and summary["callsite_enabled"] is False


@NOT_ON_RAY
def test_nodes_jobs_workers_and_placement_groups(ray):
    [n] = state.list_nodes(detail=True)
    assert n.state == "ALIVE" and n.is_head_node and n.resources_total["CPU"] == 4
    assert state.get_node(n.node_id).node_id == n.node_id
    jobs = state.list_jobs(filters=[("status", "=", "RUNNING")])
    assert raylite.get_runtime_context().get_job_id() in [j.job_id for j in jobs]
    assert all(w.worker_type == "WORKER" for w in state.list_workers())
    assert state.get_worker("00" * 16) is None
    assert state.list_placement_groups() == [] and state.get_placement_group("ab") is None


@NOT_ON_RAY
def test_placement_groups_listed_and_got(ray):
    from raylite.util.placement_group import placement_group, remove_placement_group

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], name="pair", strategy="SPREAD")
    assert pg.wait(30)
    stuck = placement_group([{"CPU": 64}])
    [row] = state.list_placement_groups(filters=[("name", "=", "pair")])
    assert (row.placement_group_id, row.state) == (pg.id.hex(), "CREATED")
    assert row.creator_job_id == raylite.get_runtime_context().get_job_id()
    got = state.get_placement_group(pg.id.hex())
    node = state.list_nodes()[0].node_id
    assert got.bundles == [{"node_id": node, "unit_resources": {"CPU": 1.0}}] * 2
    assert not got.is_detached and got.strategy == "SPREAD"
    assert [r.placement_group_id for r in state.list_placement_groups(
        filters=[("state", "=", "PENDING")])] == [stuck.id.hex()]
    remove_placement_group(pg)
    remove_placement_group(stuck)
    assert {r.state for r in state.list_placement_groups()} == {"REMOVED"}


def test_bad_filters_are_errors(ray):
    with pytest.raises(state.RayStateApiException, match="the columns are"):
        state.list_tasks(filters=[("colour", "=", "red")])
    with pytest.raises(state.RayStateApiException, match="bad predicate"):
        state.list_actors(filters=[("state", "~", "ALIVE")])


@NOT_ON_RAY
@pytest.mark.cluster_only("only a cluster has an address to ask")
def test_by_address_leaves_no_connection(ray):
    address = raylite._runtime.current().info().address
    state.list_nodes(address=address)
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert state.list_nodes(address=address)[0].state == "ALIVE"
    assert len(os.listdir("/proc/self/fd")) == fds  # each call closed its connection
    with pytest.raises(state.RayStateApiException, match="cannot"):
        state.list_nodes(address="127.0.0.1:1")
