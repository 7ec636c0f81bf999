"""The GCS's placement groups (pure): where bundles go by strategy (placement.place_bundles),
and the group table's two phases (groups.py): prepare on every chosen node, commit once all
hold their part, pending while nothing fits, removal, rescheduling when a node leaves."""
from raylite._gcs import groups as grp
from raylite._gcs.placement import place_bundles
from raylite._gcs.tables import GcsTables
from raylite._protocol import messages as m


class Node:
    def __init__(self, node_id, cpus, alive=True, **more):
        self.node_id, self.alive, self.resources = node_id, alive, {"CPU": cpus, **more}


A, B, C = b"a" * 16, b"b" * 16, b"c" * 16
NODES = [Node(A, 4), Node(B, 2), Node(C, 2)]


def _spec(gid=b"g" * 16, bundles=({"CPU": 1},), strategy="PACK", name="", detached=False,
          job=b"job1", namespace="ns"):
    return m.PlacementGroupSpec(gid, tuple(bundles), strategy, name, namespace, detached, job)


def test_pack_prefers_one_node_then_fewest_nodes():
    assert place_bundles(NODES, {}, [{"CPU": 2}, {"CPU": 2}], "PACK") == [A, A]
    assert place_bundles(NODES, {}, [{"CPU": 3}, {"CPU": 2}], "PACK") == [A, B]
    assert place_bundles(NODES, {A: {"CPU": 3}}, [{"CPU": 2}, {"CPU": 2}], "PACK") == [B, C]


def test_strict_pack_needs_one_node():
    assert place_bundles(NODES, {}, [{"CPU": 2}, {"CPU": 2}], "STRICT_PACK") == [A, A]
    assert place_bundles(NODES, {}, [{"CPU": 3}, {"CPU": 2}], "STRICT_PACK") is None


def test_spread_and_strict_spread():
    assert place_bundles(NODES, {}, [{"CPU": 1}] * 3, "SPREAD") == [A, B, C]
    assert place_bundles(NODES, {}, [{"CPU": 1}] * 4, "SPREAD") == [A, B, C, A]
    assert place_bundles(NODES, {}, [{"CPU": 1}] * 3, "STRICT_SPREAD") == [A, B, C]
    assert place_bundles(NODES, {}, [{"CPU": 1}] * 4, "STRICT_SPREAD") is None
    assert place_bundles(NODES, {}, [{"CPU": 3}, {"CPU": 3}], "STRICT_SPREAD") is None
    one = [Node(A, 8)]
    assert place_bundles(one, {}, [{"CPU": 1}] * 2, "SPREAD") == [A, A]
    assert place_bundles(one, {}, [{"CPU": 1}] * 2, "STRICT_SPREAD") is None


def test_dead_nodes_and_missing_resources_do_not_count():
    nodes = [Node(A, 8, alive=False), Node(B, 2, GPU=1)]
    assert place_bundles(nodes, {}, [{"CPU": 4}], "PACK") is None
    assert place_bundles(nodes, {}, [{"GPU": 1}], "PACK") == [B]
    assert place_bundles([], {}, [{"CPU": 1}], "PACK") is None


def test_two_phases_on_two_nodes():
    g = grp.Groups()
    spec = _spec(bundles=({"CPU": 3}, {"CPU": 2}))
    error, out = g.create(spec, NODES)
    assert error is None
    assert out == [grp.Prepare(A, spec.group_id, {0: {"CPU": 3}}),
                   grp.Prepare(B, spec.group_id, {1: {"CPU": 2}})]
    assert g.state()[0].state == "PENDING" and g.state()[0].bundle_nodes == (A.hex(), B.hex())
    assert g.prepared(spec.group_id, A) == []                 # B does not hold its part yet
    assert g.prepared(spec.group_id, C) == []                 # not a node of this group
    out = g.prepared(spec.group_id, B)
    assert out == [grp.Commit(A, spec.group_id), grp.Commit(B, spec.group_id),
                   grp.Created(spec.group_id)]
    assert g.state()[0].state == "CREATED"
    assert g.node_of(spec.group_id, 1, {}) == B and g.node_of(spec.group_id, -1, {}) == A


def test_groups_spanning_nodes_prepare_one_at_a_time():
    g = grp.Groups()
    first = _spec(b"1" * 16, ({"CPU": 3}, {"CPU": 2}))
    second = _spec(b"2" * 16, ({"CPU": 1},) * 2, "SPREAD")
    g.create(first, NODES)
    assert g.create(second, NODES) == (None, [])              # waits for the first to finish
    single = _spec(b"3" * 16, ({"CPU": 1},))                  # one node: nothing to wait for
    assert g.create(single, NODES)[1] == [grp.Prepare(A, single.group_id, {0: {"CPU": 1}})]
    g.prepared(first.group_id, A)
    out = g.prepared(first.group_id, B)
    assert grp.Created(first.group_id) in out
    out = g.retry(NODES)           # the service retries after; only C has room left now
    assert out == [grp.Prepare(C, second.group_id, {0: {"CPU": 1}, 1: {"CPU": 1}})]


def test_pending_warns_once_and_is_placed_when_a_node_joins():
    g = grp.Groups()
    spec = _spec(bundles=({"CPU": 8},))
    error, out = g.create(spec, NODES)
    assert error is None and [type(x) for x in out] == [grp.Warn]
    assert "cannot be placed" in out[0].text and "CPU: 8" in out[0].text
    assert g.retry(NODES) == []                                # no second warning
    big = NODES + [Node(b"d" * 16, 16)]
    assert g.retry(big) == [grp.Prepare(b"d" * 16, spec.group_id, {0: {"CPU": 8}})]


def test_other_groups_bundles_count_against_a_node():
    g = grp.Groups()
    g.create(_spec(b"1" * 16, ({"CPU": 4},)), [Node(A, 4)])
    error, out = g.create(_spec(b"2" * 16, ({"CPU": 1},)), [Node(A, 4)])
    assert [type(x) for x in out] == [grp.Warn]
    out = g.remove(b"1" * 16, [Node(A, 4)])                   # its bundles are freed: retried
    assert out[:2] == [grp.Return(A, b"1" * 16), grp.Removed(b"1" * 16)]
    assert out[2] == grp.Prepare(A, b"2" * 16, {0: {"CPU": 1}})


def test_names_removal_and_jobs():
    g = grp.Groups()
    named = _spec(b"1" * 16, name="w")
    assert g.create(named, NODES)[0] is None
    assert "exists already" in g.create(_spec(b"2" * 16, name="w"), NODES)[0]
    assert g.create(_spec(b"3" * 16, name="w", namespace="other"), NODES)[0] is None
    assert "exists already" in g.create(named, NODES)[0]      # the same id twice
    assert g.lookup(None, "w", "ns").spec.group_id == b"1" * 16
    g.remove(b"1" * 16, NODES)
    assert g.lookup(None, "w", "ns") is None and g.remove(b"1" * 16, NODES) == []
    kept = _spec(b"4" * 16, detached=True)
    g.create(kept, NODES)
    out = g.job_finished(b"job1", NODES)
    assert grp.Removed(b"3" * 16) in out and grp.Removed(b"4" * 16) not in out
    assert g.statistics() == {"placement_groups": {"REMOVED": 2, "PENDING": 1}}


def test_a_lost_node_places_its_groups_again():
    g = grp.Groups()
    spec = _spec(bundles=({"CPU": 3}, {"CPU": 2}))
    g.create(spec, NODES)
    g.prepared(spec.group_id, A)
    g.prepared(spec.group_id, B)
    left = [NODES[0], NODES[2]]
    out = g.node_lost(B, left)
    assert out[0] == grp.Return(A, spec.group_id, removed=False)  # A gives back its part
    assert grp.Prepare(A, spec.group_id, {0: {"CPU": 3}}) in out
    assert grp.Prepare(C, spec.group_id, {1: {"CPU": 2}}) in out
    assert g.state()[0].state == "PENDING"


def test_the_gcs_tables_report_groups():
    t = GcsTables()
    t.groups.create(_spec(name="w"), NODES)
    rec = t.state().placement_groups[0]
    assert (rec.name, rec.state, rec.strategy, rec.bundles, rec.job_id) == \
        ("w", "PENDING", "PACK", ({"CPU": 1},), b"job1".hex())
    assert t.statistics()["placement_groups"] == {"PENDING": 1}


def test_groups_are_written_through_and_come_back():
    from raylite._gcs.storage import MemoryStorage

    t = GcsTables(MemoryStorage())
    made = _spec(b"1" * 16, name="w")
    t.groups.create(made, NODES)
    t.groups.prepared(made.group_id, A)
    t.groups.create(_spec(b"2" * 16, ({"CPU": 64},)), NODES)      # pending
    back = GcsTables.load(t.storage)
    assert back.groups.state() == t.groups.state()
    assert back.groups.lookup(None, "w", "ns").nodes == [A]
    assert back.groups.groups[b"2" * 16].nodes is None
    t.groups.remove(made.group_id, NODES)
    assert GcsTables.load(t.storage).groups.lookup(None, "w", "ns") is None
