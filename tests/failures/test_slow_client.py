"""A client that stops reading costs only itself: the node daemon keeps serving everyone else,
and drops the stuck client (with a log line) once too much waits for it."""
import socket
import subprocess
import sys
import time

import pytest

import raylite
from raylite._node.outbox import Outbox, StateLock
from raylite._protocol.transport import Connection

from node_process import node  # noqa: F401 (a fixture)

# The stuck driver: its task prints ~4 MB (its log lines go through the daemon to the driver,
# whose stdout is a pipe nobody reads, so it stops reading the daemon's socket), waits, then
# prints ~40 MB: more than the daemon keeps for one peer (16 MiB).
STUCK_DRIVER = """
import os, sys, time
import raylite

raylite.init(address=sys.argv[1])

@raylite.remote
def spam(flag, go):
    line = "x" * 100
    for i in range(40_000):
        print(line, i)
    sys.stdout.flush()
    open(flag, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)
    for i in range(400_000):
        print(line, i)
    time.sleep(600)

raylite.get(spam.remote(sys.argv[2], sys.argv[3]))
"""


def _wait_for(path, proc, timeout) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the stuck driver exited early"
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_driver_that_stops_reading_does_not_freeze_the_node(node, tmp_path):
    flag, go = tmp_path / "printed", tmp_path / "go"
    stuck = subprocess.Popen([sys.executable, "-c", STUCK_DRIVER, node.address, str(flag), str(go)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # never read
    try:
        printed = _wait_for(flag, stuck, 60)  # (a frozen daemon stops the task's printing too)
        time.sleep(0.5)  # its log lines reach the daemon, which cannot pass them on
        # A second driver registers and runs a task meanwhile (RegisterClient has 30 s).
        raylite.init(address=node.address)
        assert raylite.get(raylite.remote(lambda: "served").remote(), timeout=30) == "served"
        status = subprocess.run([sys.executable, "-m", "raylite.cli.main", "status", "--address",
                                 node.address], capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert printed
        go.touch()  # now more than the daemon keeps for one peer: the stuck one is dropped
        assert node.wait_log("dropped the connection", timeout=120), node.log()[-2000:]
        assert raylite.get(raylite.remote(lambda: "still").remote(), timeout=30) == "still"
    finally:
        stuck.kill()  # the driver this test started
        stuck.wait()
        stuck.stdout.close()


def test_outbox_sends_after_the_lock_is_released_and_drops_a_peer_past_its_bound(caplog):
    a, b = socket.socketpair()
    daemon_side, peer = Connection(a, "peer"), Connection(b, "daemon")
    state = StateLock()
    box = Outbox(daemon_side, state, limit=1 << 20)
    with state:
        box.put(("hello",))
        with pytest.raises(BlockingIOError):
            b.recv(1, socket.MSG_DONTWAIT)  # nothing leaves while the lock is held
    assert peer.recv() == ("hello",)
    assert state.acquire(timeout=1) and state.acquire()  # reentrant, like an RLock
    box.put(("queued",))
    state.release()
    with pytest.raises(BlockingIOError):
        b.recv(1, socket.MSG_DONTWAIT)  # still held once
    state.release()
    assert peer.recv() == ("queued",)
    for _ in range(10):  # 5 MB for a peer that reads nothing: the socket takes ~0.2 MB
        box.put(b"x" * 500_000)
    assert box.dropped and "dropped the connection from peer" in caplog.text
    with pytest.raises(EOFError):
        while True:
            peer.recv()  # what the socket took, then the end: the peer was shut out
    daemon_side.close()
    peer.close()
