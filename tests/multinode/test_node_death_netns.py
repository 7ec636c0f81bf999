"""A node whose network is cut and whose every process is then killed, under load, on nodes
with network stacks of their own (conftest.py): the head's health check marks it dead
(nothing of the kill reaches the others: no FIN, no RST), the tasks it was running are
retried on the other nodes, and every result the driver gets is right."""
import os
import signal
import subprocess
import sys
import time

import pytest
from netns import driver_result, read_line, stop_driver

DRIVER_TIMEOUT_S = 90.0

HEALTH_TIMEOUT_S = "2"

DRIVER = """
import json, sys, time
import raylite

raylite.init(address="auto")
doomed = sys.argv[1]

@raylite.remote(max_retries=5)
def square(i):
    time.sleep(0.05)
    return i * i, raylite.get_runtime_context().get_node_id()

ran, after, seen_dead, batch = [], set(), None, 0
while batch < 60:
    refs = [square.options(scheduling_strategy="SPREAD").remote(batch * 12 + k) for k in range(12)]
    for k, (value, node) in enumerate(raylite.get(refs, timeout=60)):
        assert value == (batch * 12 + k) ** 2, (batch, k, value)
        ran.append(node)
        if seen_dead is not None:
            after.add(node)
    batch += 1
    if batch == 3:
        print("LOADED", flush=True)           # the test cuts and kills the doomed node now
    alive = {n["NodeID"]: n["Alive"] for n in raylite.nodes()}
    if seen_dead is None and alive.get(doomed) is False:
        seen_dead = batch
    elif seen_dead is not None and batch >= seen_dead + 4:
        break
print(json.dumps({"results": len(ran), "doomed_ran": ran.count(doomed), "seen_dead": seen_dead,
                  "after": sorted(after), "alive": alive}))
"""


@pytest.fixture(scope="module", autouse=True)
def short_health_check():
    """The head of this module's nodes (conftest's `net`: the head and B with 1 CPU, C with
    2) gives up on a silent node after 2 s (default 10 s)."""
    old = os.environ.get("RAYLITE_HEALTH_CHECK_TIMEOUT_S")
    os.environ["RAYLITE_HEALTH_CHECK_TIMEOUT_S"] = HEALTH_TIMEOUT_S
    yield
    if old is None:
        del os.environ["RAYLITE_HEALTH_CHECK_TIMEOUT_S"]
    else:
        os.environ["RAYLITE_HEALTH_CHECK_TIMEOUT_S"] = old


def test_a_node_cut_off_and_killed_under_load_is_survived(net):
    head, b, c = net.nodes
    driver = subprocess.Popen(head.enter() + [sys.executable, "-c", DRIVER, c.node_id],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=head.env())
    try:
        deadline = time.monotonic() + DRIVER_TIMEOUT_S
        assert read_line(driver, deadline).strip() == "LOADED"
        subprocess.run(["ip", "-n", c.ns, "link", "set", "eth0", "down"], check=True)  # cut first:
        pids = [int(p) for p in subprocess.run(["ip", "netns", "pids", c.ns], check=True,  # the
                capture_output=True, text=True).stdout.split()]   # kill then sends nothing out
        assert pids                                        # daemon, fork server, workers
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        result = driver_result(driver, DRIVER_TIMEOUT_S)
    finally:
        stop_driver(driver)
    assert result["doomed_ran"] > 0 and result["seen_dead"] is not None
    assert result["results"] >= 12 * (result["seen_dead"] + 4)  # every result checked right
    assert set(result["after"]) == {head.node_id, b.node_id}  # the others carry the load
    assert result["alive"] == {head.node_id: True, b.node_id: True, c.node_id: False}
    assert f"node {c.node_id} at {c.address} died: nothing heard from it" in head.log()
