"""A node never wedges: workers killed while starting, the fork server killed, forged worker
registrations; and a dead worker's callers are told how it died."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import raylite
from raylite._protocol import messages as m
from raylite._protocol.transport import connect
from raylite.exceptions import ActorDiedError, WorkerCrashedError

from node_process import Node, node  # noqa: F401 (node: a fixture)


def _workers(node: Node) -> list[int]:
    """The daemon's grandchildren: workers forked by its (current) zygote. One pass over /proc
    (psutil's children() takes ~20 ms a call here: too slow to catch a worker starting)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rpartition(b")")[2].split()
            except OSError:
                continue
            if fields[0] != b"Z":
                parents[int(name)] = int(fields[1])
    zygotes = {pid for pid, ppid in parents.items() if ppid == node.proc.pid}
    return [pid for pid, ppid in parents.items() if ppid in zygotes]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)  # a worker of the daemon this test started
    except ProcessLookupError:
        pass


@raylite.remote
def echo(x):
    return x


def test_workers_killed_while_starting_do_not_wedge_the_node(node):
    raylite.init(address=node.address)
    refs = [echo.remote(i) for i in range(300)]  # demand: the node keeps starting workers
    seen: set = set()
    end = time.monotonic() + 4
    while time.monotonic() < end:  # every worker dies as soon as it is seen, most still starting
        for pid in _workers(node):
            if pid not in seen:
                seen.add(pid)
                _kill(pid)
    assert seen
    assert raylite.get(echo.remote("after"), timeout=60) == "after"
    done, _ = raylite.wait(refs, num_returns=len(refs), timeout=60)
    assert len(done) == len(refs)  # each finished or failed; none is stuck


def test_random_worker_kills_lose_no_task(node):
    raylite.init(address=node.address)

    @raylite.remote(max_retries=0)
    def work(i):
        time.sleep(0.002)
        return i

    refs = [work.remote(i) for i in range(600)]
    end = time.monotonic() + 3
    while time.monotonic() < end:
        pids = _workers(node)
        if pids:
            _kill(random.choice(pids))
        time.sleep(0.05)
    crashed = 0
    for i, ref in enumerate(refs):
        try:
            assert raylite.get(ref, timeout=60) == i
        except WorkerCrashedError:
            crashed += 1
    assert crashed < len(refs)


def test_a_killed_fork_server_is_replaced(node):
    raylite.init(address=node.address)
    assert raylite.get(echo.remote(1), timeout=30) == 1
    os.kill(node.zygote_pid, signal.SIGKILL)  # the daemon's child, started by this test
    assert raylite.get([echo.remote(i) for i in range(20)], timeout=60) == list(range(20))
    assert node.wait_log("the worker fork server")


def test_idle_unauthenticated_connections_do_not_wedge_the_node(node):
    import socket

    from raylite._protocol.transport import split_address

    raylite.init(address=node.address)

    @raylite.remote
    class A:
        def ping(self):
            return "pong"

    assert raylite.get(echo.remote(0), timeout=30) == 0
    # Connections that never authenticate, held while the node starts workers: however long
    # they hold up the workers' handshakes, the node must end up serving.
    idle = [socket.create_connection(split_address(node.address)) for _ in range(4)]
    try:
        actors = [A.remote() for _ in range(4)]  # each needs a worker of its own
        time.sleep(12)
    finally:
        for s in idle:
            s.close()
    assert raylite.get([a.ping.remote() for a in actors], timeout=60) == ["pong"] * 4


def test_a_worker_that_cannot_connect_says_why_and_fails():
    code = ("from raylite._worker.main import run\n"
            "run('127.0.0.1:1', b'x' * 32, b'w' * 16, '/nonexistent', b'n' * 16)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "cannot connect to the node daemon at 127.0.0.1:1" in out.stderr, out.stderr


def test_forged_worker_registrations_are_refused_and_never_signalled(node):
    sentinel = subprocess.Popen(["sleep", "120"])
    try:
        # a pid that is not its worker's: refused, and the daemon closes the connection
        conn = connect(node.address, bytes.fromhex(node.token))
        conn.sock.settimeout(10)
        conn.send(m.RegisterWorker(os.urandom(16), sentinel.pid, "127.0.0.1:1"))
        with pytest.raises((EOFError, ConnectionError)):
            conn.recv()
        conn.close()
        # pid 0 (and -1: see test_pure_cores; a daemon that took it would, as root, SIGKILL
        # every process on the machine at shutdown) is not even a valid message: refused
        conn = connect(node.address, bytes.fromhex(node.token))
        conn.send(m.RegisterWorker(os.urandom(16), 0, "127.0.0.1:1"))
        assert node.wait_log("refused a RegisterWorker")
        conn.close()
        assert node.wait_log("refused a worker registration")
        raylite.init(address=node.address)
        assert raylite.get(echo.remote(2), timeout=30) == 2
        assert node.stop() == 0
        time.sleep(0.2)
        assert sentinel.poll() is None, "the daemon signalled a process that is not its worker"
    finally:
        sentinel.kill()
        sentinel.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_sigterm_stops_the_daemon_whichever_thread_receives_it(node):
    pid = node.proc.pid
    others = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    os.kill(others[0], signal.SIGTERM)  # Linux: a signal to the daemon, received by that thread
    try:
        assert node.proc.wait(15) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon ignored a SIGTERM that another thread than its main one received")


# -- how a worker died reaches its callers ---------------------------------------------
def test_a_crashed_task_says_how_its_worker_died(cluster):
    @cluster.remote(max_retries=0)
    def die(how):
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)

    with pytest.raises(WorkerCrashedError, match="killed by SIGKILL"):
        cluster.get(die.remote("kill"), timeout=30)
    with pytest.raises(WorkerCrashedError, match="exited with code 3"):
        cluster.get(die.remote("exit"), timeout=30)


def test_a_dead_actor_says_how_its_worker_died(cluster):
    @cluster.remote
    class A:
        def pid(self):
            return os.getpid()

        def exit(self):
            os._exit(3)

    a = A.remote()
    cluster.get(a.pid.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        cluster.get(a.exit.remote(), timeout=30)
    with pytest.raises(ActorDiedError, match="exited with code 3"):
        cluster.get(a.pid.remote(), timeout=30)
