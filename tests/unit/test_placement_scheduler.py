"""The node scheduler's side of placement groups (pure): bundles held at once when they fit,
committed as resources of their own names, leases in them counted exactly, and all of it
given back (leases killed, requests refused) when the group is returned."""
from raylite import _ids
from raylite import _resources as res
from raylite._node import scheduler as sch

G = b"g" * 16
H = G.hex()


def _sched(cpus=4, workers=0):
    s = sch.NodeScheduler({"CPU": cpus, "custom": 2}, _ids.new_id)
    for i in range(workers):
        s.worker_registered(b"w%d" % i)
    return s


def _grants(out):
    return [i for i in out if type(i) is sch.Grant]


def test_prepare_holds_every_bundle_at_once_then_commit_names_them():
    s = _sched()
    assert s.prepare_bundles(G, {0: {"CPU": 1}, 1: {"CPU": 2, "custom": 1}}) == [sch.Prepared(G)]
    assert s.available["CPU"] == 1 and s.available["custom"] == 1
    assert f"CPU_group_{H}" not in s.available                # not usable before the commit
    assert s.prepare_bundles(G, {0: {"CPU": 1}}) == [sch.Prepared(G)]  # asked again: same answer
    assert s.available["CPU"] == 1
    s.commit_bundles(G)
    assert s.available[f"CPU_group_0_{H}"] == 1 and s.available[f"CPU_group_1_{H}"] == 2
    assert s.available[f"CPU_group_{H}"] == 3 and s.total[f"custom_group_1_{H}"] == 1
    assert s.available[f"bundle_group_{H}"] == 2 * res.BUNDLE_UNITS
    assert s.total["CPU"] == 4                                 # the node's own total stays
    assert s.statistics()["placement_groups"] == 1


def test_a_reservation_waits_in_the_queue_until_it_all_fits():
    s = _sched(cpus=2, workers=1)
    lease = _grants(s.request_lease("a", 1, {"CPU": 1}, "f"))[0]
    # 1 CPU of 2 free: nothing held; owners are asked for the leases they do not use
    assert s.prepare_bundles(G, {0: {"CPU": 1}, 1: {"CPU": 1}}) == [sch.RevokeIdle()]
    assert s.available["CPU"] == 1
    assert [r.state for r in s.state("n", {}).leases] == ["GRANTED", "PENDING"]
    assert sch.Prepared(G) in s.return_lease(lease.lease_id)
    assert s.available["CPU"] == 0


def test_leases_in_a_bundle_take_its_resources_exactly():
    s = _sched(cpus=4, workers=3)
    s.prepare_bundles(G, {0: {"CPU": 2}, 1: {"CPU": 1}})
    s.commit_bundles(G)
    in0 = res.in_group({"CPU": 1}, H, 0)
    a = _grants(s.request_lease("o", 1, in0, "f"))
    b = _grants(s.request_lease("o", 2, in0, "f"))
    assert a and b
    assert s.available[f"CPU_group_0_{H}"] == 0 and s.available[f"CPU_group_{H}"] == 1
    assert not _grants(s.request_lease("o", 3, in0, "f"))      # bundle 0 is full: it waits
    anywhere = _grants(s.request_lease("o", 4, res.in_group({"CPU": 1}, H, -1), "g"))
    assert anywhere and s.available[f"CPU_group_{H}"] == 0     # the group's last CPU
    assert s.available["CPU"] == 1                             # the node's pool never touched
    assert [g.req for g in _grants(s.return_lease(a[0].lease_id))] == [3]


def test_return_ends_leases_refuses_requests_and_gives_everything_back():
    s = _sched(cpus=4, workers=2)
    s.prepare_bundles(G, {0: {"CPU": 1}})
    s.commit_bundles(G)
    in0 = res.in_group({"CPU": 1}, H, 0)
    lease = _grants(s.request_lease("o", 1, in0, "f"))[0]
    s.request_lease("o", 2, in0, "f")                          # queued behind it
    out = s.return_bundles(G)
    assert sch.Kill(lease.worker_id) in out
    assert sch.Refuse("o", 2, sch._removed(H), True) in out
    assert s.available == {"CPU": 4, "custom": 2} and s.total == {"CPU": 4, "custom": 2}
    assert s.request_lease("o", 3, in0, "f") == [sch.Refuse("o", 3, sch._removed(H), True)]
    assert s.return_bundles(G) == []                           # twice: nothing left to do


def test_return_before_commit_cancels_the_reservation():
    s = _sched(cpus=2)
    s.prepare_bundles(G, {0: {"CPU": 1}})
    s.return_bundles(G)
    assert s.available["CPU"] == 2
    t = _sched(cpus=1, workers=1)
    _grants(t.request_lease("a", 1, {"CPU": 1}, "f"))
    assert t.prepare_bundles(G, {0: {"CPU": 1}}) == [sch.RevokeIdle()]  # queued
    t.return_bundles(G)
    assert not t.queue and t.available["CPU"] == 0


def test_a_group_demand_is_not_called_infeasible_before_its_commit():
    s = _sched(cpus=1)
    out = s.request_lease("o", 1, res.in_group({"CPU": 1}, H, 0), "f")
    assert not [i for i in out if type(i) is sch.Infeasible]
    assert [type(i) for i in s.request_lease("o", 2, {"CPU": 9}, "big")] == [sch.Infeasible]


def test_resource_names_of_a_group():
    assert res.in_group({}, H, -1) == {f"bundle_group_{H}": res.BUNDLE_MARK}
    assert res.in_group({"CPU": 2}, H, 1) == {
        f"bundle_group_{H}": res.BUNDLE_MARK, f"bundle_group_1_{H}": res.BUNDLE_MARK,
        f"CPU_group_{H}": 2, f"CPU_group_1_{H}": 2}
    assert res.group_of(res.in_group({"GPU": 1}, H, 0)) == H
    assert res.group_of({"CPU": 1}) is None


def test_a_group_placed_again_keeps_its_requests_queued():
    s = _sched(cpus=2, workers=2)
    s.prepare_bundles(G, {0: {"CPU": 1}})
    s.commit_bundles(G)
    in0 = res.in_group({"CPU": 1}, H, 0)
    lease = _grants(s.request_lease("o", 1, in0, "f"))[0]
    out = s.return_bundles(G, removed=False)      # another node of the group left
    assert sch.Kill(lease.worker_id) in out and not [i for i in out if type(i) is sch.Refuse]
    assert s.request_lease("o", 2, in0, "f") == []   # waits for the group to come back
    s.prepare_bundles(G, {0: {"CPU": 1}})
    assert [g.req for g in _grants(s.commit_bundles(G))] == [2]


def test_requests_for_a_group_not_here_do_not_revoke_idle_leases():
    s = _sched(cpus=2, workers=4)
    _grants(s.request_lease("a", 1, {"CPU": 1}, "f"))
    assert s.request_lease("o", 2, res.in_group({}, H, -1), "ready") == []
    s.prepare_bundles(G, {0: {"CPU": 1}})
    s.commit_bundles(G)
    assert _grants(s.request_lease("o", 3, res.in_group({"CPU": 1}, H, 0), "f"))
    assert s.request_lease("o", 4, res.in_group({"CPU": 1}, H, 0), "f") == [sch.RevokeIdle()]


def test_gpu_ids_are_the_bundle_s_own():
    s = sch.NodeScheduler({"CPU": 4, "GPU": 3}, _ids.new_id)
    for i in range(3):
        s.worker_registered(b"w%d" % i)
    plain = _grants(s.request_lease("o", 1, {"GPU": 1}, "f"))[0]
    assert plain.gpu_ids == (0,)
    s.prepare_bundles(G, {0: {"GPU": 1}, 1: {"GPU": 1}})
    s.commit_bundles(G)
    assert s.free_gpus == [] and s.groups[G].gpus == {0: [1], 1: [2]}
    in1 = _grants(s.request_lease("o", 2, res.in_group({"GPU": 1}, H, 1), "f"))[0]
    assert in1.gpu_ids == (2,)
    anywhere = _grants(s.request_lease("o", 3, res.in_group({"GPU": 1}, H, -1), "f"))[0]
    assert anywhere.gpu_ids == (1,)
    s.return_lease(in1.lease_id)
    assert s.groups[G].gpus[1] == [2]                          # back to its bundle
    s.return_lease(plain.lease_id)
    s.return_bundles(G)
    assert s.free_gpus == [0, 1, 2]                            # its lease's id too
