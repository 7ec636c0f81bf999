"""The `net` fixture: three nodes, each in network, mount and PID namespaces of its own
(netns.py draws them and says how they are made and torn down)."""
from __future__ import annotations

import pytest
from netns import Net, why_skip


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Three nodes: the head (1 CPU) at .1, B (1 CPU, resource "b", label zone=b) at .2 joined
    with --host 0.0.0.0 (its address detected from the route), C (2 CPUs) at .3 joined
    with no --host (it listens on its route's address)."""
    why = why_skip()
    if why:
        pytest.skip(why)
    n = Net(str(tmp_path_factory.mktemp("netns")), 3)
    try:
        n.make()
        head, b, c = n.nodes
        head.start("--record", "--host", head.ip, "--port", "6380", "--num-cpus", "1")
        b.start("--address", head.address, "--host", "0.0.0.0", "--num-cpus", "1",
                "--resources", '{"b": 1}', "--labels", '{"zone": "b"}')
        c.start("--address", head.address, "--num-cpus", "2")
        yield n
    finally:
        n.teardown()
