"""Several nodes, each with its own network stack, /dev/shm and PID namespace (conftest.py):
node addresses, drivers on any node, tasks placed by resource, SPREAD, node affinity and
spillback when busy, and an actor on one node called from drivers on two nodes (large
objects and placement groups: test_netns_objects_groups.py)."""

PRELUDE = """
import json, sys, time
import raylite
from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy

@raylite.remote
def where(pause=0.0):
    time.sleep(pause)
    return raylite.get_runtime_context().get_node_id()
"""


def test_every_node_reports_the_address_others_reach_it_on(net):
    head, b, c = net.nodes
    assert [n.address.rpartition(":")[0] for n in net.nodes] == [head.ip, b.ip, c.ip]
    r = c.run(PRELUDE + """
raylite.init(address="auto")                         # joins through this node's daemon
nodes = raylite.nodes()
me = raylite.get_runtime_context().get_node_id()
print(json.dumps([me, nodes, raylite.get(where.remote())]))
""")
    me, nodes, ran = r.result
    assert me == c.node_id and ran == c.node_id
    by_id = {n["NodeID"]: n for n in nodes}
    assert {i: (n["NodeManagerAddress"], n["Alive"]) for i, n in by_id.items()} == \
        {x.node_id: (x.ip, True) for x in net.nodes}
    assert by_id[b.node_id]["Labels"]["zone"] == "b" and by_id[b.node_id]["Resources"]["b"] == 1
    assert by_id[head.node_id]["IsHead"]
    status = b.run("from raylite.cli.main import main; main(['status'])", check=False)
    assert status.returncode == 0, status.stderr
    for x in net.nodes:
        assert x.node_id[:12] in status.stdout and x.ip in status.stdout


def test_a_driver_on_a_worker_node_given_the_heads_address_joins_through_its_node(net):
    head, b, c = net.nodes
    r = b.run(PRELUDE + """
raylite.init(address=sys.argv[1])
print(json.dumps([raylite.get_runtime_context().get_node_id(),
                  raylite.get(where.options(resources={"b": 1}).remote())]))
""", head.address)
    assert r.result == [b.node_id, b.node_id]


def test_placement_by_resource_spread_affinity_and_busy_spillback(net):
    head, b, c = net.nodes
    r = head.run(PRELUDE + """
raylite.init(address="auto")
out = {}
out["b"] = raylite.get(where.options(resources={"b": 1}).remote())
out["two_cpus"] = raylite.get(where.options(num_cpus=2).remote())       # only C has 2
out["spread"] = raylite.get([where.options(scheduling_strategy="SPREAD").remote(0.5)
                             for _ in range(3)])
on_c = NodeAffinitySchedulingStrategy(sys.argv[1], soft=False)
out["affinity"] = raylite.get([where.options(scheduling_strategy=on_c).remote() for _ in range(3)])
out["busy"] = raylite.get([where.remote(0.5) for _ in range(3)])         # 1 CPU here
print(json.dumps(out))
""", c.node_id)
    out = r.result
    assert out["b"] == b.node_id and out["two_cpus"] == c.node_id
    assert sorted(out["spread"]) == sorted(x.node_id for x in net.nodes)
    assert out["affinity"] == [c.node_id] * 3
    assert head.node_id in out["busy"] and len(set(out["busy"])) >= 2


def test_an_actor_on_node_b_is_called_from_drivers_on_two_nodes(net):
    head, b, c = net.nodes
    create = head.run(PRELUDE + """
raylite.init(address="auto", namespace="mn")

@raylite.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self, blob):
        self.n += len(blob)
        return raylite.get_runtime_context().get_node_id(), self.n

on_b = NodeAffinitySchedulingStrategy(sys.argv[1], soft=False)
a = Counter.options(name="counter", lifetime="detached", scheduling_strategy=on_b).remote()
print(json.dumps(raylite.get(a.add.remote(b"x" * 50_000))))
""", b.node_id)
    assert create.result == [b.node_id, 50_000]
    call = c.run(PRELUDE + """
raylite.init(address="auto", namespace="mn")
a = raylite.get_actor("counter")
got = raylite.get(a.add.remote(b"y" * 1000))
raylite.kill(a)
print(json.dumps(got))
""")
    assert call.result == [b.node_id, 51_000]
