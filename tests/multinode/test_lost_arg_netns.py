"""A task's argument lost WHILE it crosses the network, on nodes with network stacks of their
own (netns.py): x, made on node B, is being copied to node C for g(x) when B dies; x is
rebuilt from its lineage on a live node and g, on C, gets the right bytes. B dies in two
ways, which reach the two paths by which raylite recovers (_runtime/cluster_nodes.py):

    machine_lost     B's link is cut, then its every process killed: nothing of it reaches
                     anyone (no FIN, no RST). C's pull of x stalls until the head's health
                     check marks B dead; C's daemon then ends the pull, and g's worker, which
                     hears of B's death with it, asks the driver (x's owner) for x again
                     (the driver rebuilds it); g may also fail reading x and be retried, if
                     its worker reads the failed pull before B's death
    crashed_unheard  B cannot reach the head any more (a blackhole route on B), then its
                     every process is killed with its link up: C's pull ends at once (the
                     connection closed mid-transfer) while B is alive for everyone, so g's
                     first attempt fails with ObjectLostError; the driver keeps it until it
                     hears of B's death (parked), rebuilds x, then retries g (max_retries=1,
                     no retry_exceptions)

    driver (head) ── x = make() ──► B: x (48 MiB) in B's /dev/shm
                  ── g(x) ───────► C: C's daemon pulls x from B over B's shaped link
    the test watches x's file fill in C's /dev/shm and, once part of it is there, kills B
    ──► C's pull fails ──► the head marks B dead ──► x made again (on the head or C) ──►
    g gets it on C ──► the driver checks g's result, and both tasks' attempts

B's egress is shaped with tbf (RATE), so the copy takes several seconds and the kill lands
in its middle: the test checks that it did (x's file on C partly filled just before the
kill, C's log naming the failed pull of x from B) and fails, never passes, when the race
is missed. The head gives up on a silent node after HEALTH_TIMEOUT_S: crashed_unheard
needs the pull to fail (a fraction of a second after the kill) before that."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from netns import Net, driver_result, read_line, stop_driver, why_skip

DRIVER_TIMEOUT_S = 120.0
HEALTH_TIMEOUT_S = "3"
SIZE = 48 * 2**20          # bytes of x's array
RATE = "50mbit"            # B's egress: 48 MiB take about 8 s to cross it
STARTED = 1 / 8            # the kill waits until this much of x's file on C is filled

DRIVER = """
import hashlib, json, sys, time
import numpy as np
import raylite
from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from raylite.util.state import list_tasks

raylite.init(address="auto")
b, c, size = sys.argv[1], sys.argv[2], int(sys.argv[3])

def node():
    return raylite.get_runtime_context().get_node_id()

def data(n):
    return np.arange(n // 8, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)

@raylite.remote(max_retries=2)
def make(n):
    return node(), data(n)

@raylite.remote
def g(x):
    made_on, a = x
    return node(), made_on, a.nbytes, hashlib.sha256(a).hexdigest()

x = make.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b, soft=True)).remote(size)
assert raylite.wait([x], timeout=60)[0] == [x]        # done on B; nothing of it read here
ref = g.options(scheduling_strategy=NodeAffinitySchedulingStrategy(c, soft=False),
                max_retries=1).remote(x)
t0 = time.monotonic()
print("SUBMITTED", x.hex(), flush=True)               # the test watches C's copy of x now
ran_on, made_on, nbytes, digest = raylite.get(ref, timeout=90)
took = time.monotonic() - t0
again_on = raylite.get(x, timeout=60)[0]
alive = {n["NodeID"]: n["Alive"] for n in raylite.nodes()}

def attempts(name):
    return sorted((t["attempt_number"], t["state"], t["node_id"], t["error_message"] or "")
                  for t in list_tasks(filters=[("name", "=", name)], detail=True))

end = time.monotonic() + 3     # task events arrive in batches: until every attempt that
while True:                    # gave us a value (x twice, g once) shows as finished
    tasks = {name: attempts(name) for name in ("make", "g")}
    finished = [t[1] for t in tasks["make"] + tasks["g"]].count("FINISHED")
    if finished >= 3 or time.monotonic() > end:
        break
    time.sleep(0.1)
print(json.dumps({"ran_on": ran_on, "made_on": made_on, "nbytes": nbytes, "again_on": again_on,
                  "right": digest == hashlib.sha256(data(size)).hexdigest(), "alive": alive,
                  "tasks": tasks, "took": round(took, 2)}))
"""


@pytest.fixture(scope="module")
def where():
    """Our namespaces' name prefix and subnet ($RAYLITE_NETNS_PREFIX, $RAYLITE_NETNS_SUBNET),
    read before the suite's clean_env fixture empties RAYLITE_* for each test."""
    return os.environ.get("RAYLITE_NETNS_PREFIX", ""), os.environ.get("RAYLITE_NETNS_SUBNET", "")


@pytest.fixture
def nodes(tmp_path, monkeypatch, where):
    """Three fresh nodes for each test (B dies in each): the head (1 CPU), B (1 CPU) and C
    (2 CPUs); the head gives up on a silent node after HEALTH_TIMEOUT_S (default 10 s)."""
    why = why_skip(where[0]) or (shutil.which("tc") is None and "`tc` is not installed")
    if why:
        pytest.skip(why)
    monkeypatch.setenv("RAYLITE_HEALTH_CHECK_TIMEOUT_S", HEALTH_TIMEOUT_S)
    n = Net(str(tmp_path), 3, prefix=where[0], subnet=where[1])
    try:
        n.make()
        head, b, c = n.nodes
        head.start("--record", "--host", head.ip, "--port", "6380", "--num-cpus", "1")
        b.start("--address", head.address, "--host", b.ip, "--num-cpus", "1")
        c.start("--address", head.address, "--host", c.ip, "--num-cpus", "2")
        yield n
    finally:
        n.teardown()


def _filled(path: str) -> int:
    """Bytes of the file at `path` that exist (tmpfs pages written so far); -1: no file."""
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return -1


def _kill(ns: str) -> None:
    """Kills every process in the node's network namespace: its holder (PID 1 of its PID
    namespace), daemon, fork server and workers."""
    pids = [int(p) for p in subprocess.run(["ip", "netns", "pids", ns], check=True,
                                           capture_output=True, text=True).stdout.split()]
    assert pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("how", ["machine_lost", "crashed_unheard"])
def test_an_argument_lost_with_its_node_mid_transfer_is_rebuilt_and_the_task_gets_it(nodes, how):
    head, b, c = nodes.nodes
    subprocess.run(["tc", "-n", b.ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", RATE,
                    "burst", "64kb", "latency", "400ms"], check=True)
    driver = subprocess.Popen(head.enter() + [sys.executable, "-c", DRIVER, b.node_id, c.node_id,
                                              str(SIZE)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=head.env())
    try:
        deadline = time.monotonic() + DRIVER_TIMEOUT_S
        word, xhex = read_line(driver, deadline).split()
        assert word == "SUBMITTED"
        # x's copy on C, seen from outside C's mount namespace (through its holder's root)
        path = f"/proc/{c.holder}/root/dev/shm/raylite_{c.node_id[:12]}_{xhex}"
        filled = _filled(path)
        while filled < SIZE * STARTED and time.monotonic() < deadline:
            time.sleep(0.01)
            filled = _filled(path)
        # the kill lands mid-transfer: part of x is on C, not all of it
        assert SIZE * STARTED <= filled < SIZE, f"x's copy on C has {filled} of {SIZE} bytes"
        if how == "machine_lost":
            subprocess.run(["ip", "-n", b.ns, "link", "set", "eth0", "down"], check=True)
        else:
            subprocess.run(["ip", "-n", b.ns, "route", "add", "blackhole", f"{head.ip}/32"],
                           check=True)
        _kill(b.ns)
        result = driver_result(driver, DRIVER_TIMEOUT_S)
    finally:
        stop_driver(driver)
    print(f"\n{how}: x's copy on C had {filled} of {SIZE} bytes when B was killed; g's result "
          f"came {result['took']} s after g was submitted; attempts {result['tasks']}")
    # C's pull of x from B failed, and how: B's death (heard) or the connection closing
    failed = f"pulling object {xhex} (48.0 MiB) from the node daemon at {b.address} failed: "
    why = "its node died: nothing heard from it" if how == "machine_lost" else \
        f"connection to {b.address} closed mid-transfer"
    assert failed + why in c.log(), c.log()
    # g ran on C with the right bytes, from an x made again on a live node
    assert result["ran_on"] == c.node_id and result["nbytes"] == SIZE and result["right"]
    assert result["made_on"] in (head.node_id, c.node_id)
    assert result["again_on"] == result["made_on"]
    make, g = result["tasks"]["make"], result["tasks"]["g"]
    assert [t[:3] for t in make] == [[0, "FINISHED", b.node_id], [1, "FINISHED", result["made_on"]]]
    assert g and all(t[2] == c.node_id for t in g), g
    retried = g[0][1] == "FAILED"
    assert retried or how == "machine_lost", g   # crashed_unheard: read failed, B alive for all
    if retried:  # its first attempt failed reading x; the result came from a second one
        assert g[0][0] == 0 and "ObjectLostError" in g[0][3] and xhex in g[0][3], g
        assert [t[:2] for t in g[1:]] == [[1, "FINISHED"]], g  # its own record too
    else:        # its worker heard of B's death with the failed pull: it asked x's owner again
        assert [t[:2] for t in g] == [[0, "FINISHED"]], g
    assert result["alive"] == {head.node_id: True, b.node_id: False, c.node_id: True}
    assert f"node {b.node_id} at {b.address} died: nothing heard from it" in head.log()
