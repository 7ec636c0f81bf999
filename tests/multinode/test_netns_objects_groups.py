"""Several nodes with network stacks of their own (conftest.py), for what crosses them in
bulk or by reservation: a 64 MiB object carried driver → node B → node C over the veth
links (its bytes checked at each end), STRICT_SPREAD placement groups over the three
nodes (each bundle on its own node; a fourth bundle stays pending and wait() says so
within its timeout), and a task, a child it creates and an actor run in a bundle held by
another node than the driver's (their node ids checked).

The nodes (the `net` fixture): head .1 (1 CPU), B .2 (1 CPU, resource "b"), C .3 (2 CPUs);
each has a 256 MiB tmpfs of its own on /dev/shm, so the 64 MiB objects here fit twice."""
PRELUDE = """
import json, sys, time
import raylite
from raylite.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                                PlacementGroupSchedulingStrategy)
from raylite.util.placement_group import (placement_group, placement_group_table,
                                          remove_placement_group)

def node():
    return raylite.get_runtime_context().get_node_id()

@raylite.remote
def where():
    return node()
"""

MIB64 = 64 * 2**20


def test_a_64_mib_object_moves_from_the_driver_to_node_b_then_to_node_c(net):
    head, b, c = net.nodes
    r = head.run(PRELUDE + """
import hashlib
import numpy as np

@raylite.remote(resources={"b": 1}, num_returns=2)
def derive(a):                     # on B: reads the driver's put, returns a new 64 MiB array
    return node(), a[::-1] ^ np.uint64(0x5A5A5A5A5A5A5A5A)

@raylite.remote
def digest(a):                     # on C: reads B's result
    return node(), a.nbytes, hashlib.sha256(a).hexdigest()

raylite.init(address="auto")
a = np.arange(int(sys.argv[2]) // 8, dtype=np.uint64)
ref = raylite.put(a)
on_b, derived = derive.remote(ref)
on_c = NodeAffinitySchedulingStrategy(sys.argv[1], soft=False)
ran_c, size, got = raylite.get(digest.options(scheduling_strategy=on_c).remote(derived))
want = a[::-1] ^ np.uint64(0x5A5A5A5A5A5A5A5A)
back = raylite.get(derived)        # and back to the driver's node
print(json.dumps([node(), raylite.get(on_b), ran_c, size, got == hashlib.sha256(want).hexdigest(),
                  bool(np.array_equal(back, want))]))
""", c.node_id, str(MIB64))
    assert r.result == [head.node_id, b.node_id, c.node_id, MIB64, True, True]


def test_strict_spread_groups_put_each_bundle_on_its_own_node(net):
    head, b, c = net.nodes
    r = head.run(PRELUDE + """
raylite.init(address="auto")
pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
ready = pg.wait(30)
table = placement_group_table(pg)
ran = [raylite.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
    pg, placement_group_bundle_index=i)).remote()) for i in range(3)]
four = placement_group([{"CPU": 1}] * 4, strategy="STRICT_SPREAD")  # 3 nodes: cannot be placed
four_ready = four.wait(1)
four_state = placement_group_table(four)["state"]
remove_placement_group(four)
remove_placement_group(pg)
after = raylite.get(where.options(num_cpus=2).remote())   # C's two CPUs are free again
print(json.dumps([ready, table["state"], [table["bundles_to_node_id"][i] for i in range(3)], ran,
                  four_ready, four_state, after]))
""")
    ready, state, nodes, ran, four_ready, four_state, after = r.result
    assert ready is True and state == "CREATED"
    assert sorted(nodes) == sorted(x.node_id for x in net.nodes)   # one bundle per node
    assert ran == nodes                                            # each task ran at its bundle
    assert four_ready is False and four_state == "PENDING"
    assert after == c.node_id


def test_a_task_its_child_and_an_actor_run_in_a_bundle_on_another_node(net):
    head, b, c = net.nodes
    r = head.run(PRELUDE + """
raylite.init(address="auto")

@raylite.remote
def parent():
    return node(), raylite.get(where.remote())   # no strategy of its own: captured by the group

@raylite.remote(num_cpus=1)
class Probe:
    def node(self):
        return node()

pg = placement_group([{"CPU": 2}], strategy="STRICT_PACK")   # only C has 2 CPUs
assert pg.wait(30)
in_pg = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0,
                                         placement_group_capture_child_tasks=True)
task = raylite.get(parent.options(scheduling_strategy=in_pg).remote())
actor = Probe.options(scheduling_strategy=in_pg).remote()
on = raylite.get(actor.node.remote())
bundle_node = placement_group_table(pg)["bundles_to_node_id"][0]
remove_placement_group(pg)
print(json.dumps([node(), bundle_node, task, on]))
""")
    me, bundle_node, task, actor = r.result
    assert me == head.node_id and bundle_node == c.node_id
    assert task == [c.node_id, c.node_id]
    assert actor == c.node_id
