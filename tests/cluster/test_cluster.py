"""Cluster-only behaviour: processes, security, scheduling, logs, drivers sharing a cluster."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

import raylite
from raylite._protocol import messages as m
from raylite._protocol.transport import AuthenticationError, connect


def test_init_starts_daemon_and_shutdown_leaves_no_process():
    import psutil

    raylite.init(num_cpus=2)
    me = psutil.Process()
    assert me.children(recursive=True), "init() should have started a node daemon"
    worker = raylite.get(raylite.remote(lambda: os.getpid()).remote())
    pids = [p.pid for p in me.children(recursive=True)]  # workers start after init() returns
    assert worker in pids
    raylite.shutdown()
    time.sleep(0.2)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []


def test_idle_workers_beyond_the_cpu_count_are_stopped_and_work_goes_on(monkeypatch):
    import psutil

    monkeypatch.setenv("RAYLITE_IDLE_WORKER_KILL_MS", "300")
    raylite.init(num_cpus=1)
    try:
        @raylite.remote
        def inner():
            return os.getpid()

        @raylite.remote
        def outer():  # blocked in get(): its CPU is lent, so inner() needs a second worker
            return os.getpid(), raylite.get(inner.remote())

        a, b = raylite.get(outer.remote())
        assert a != b
        daemon = psutil.Process(raylite._runtime.current()._proc.pid)

        def workers():
            return [p for z in daemon.children() for p in z.children()]

        assert len(workers()) >= 2
        deadline = time.monotonic() + 10
        while len(workers()) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers()) == 1  # one per CPU is kept
        assert raylite.get(outer.remote())[1] > 0  # and a new one starts when needed
    finally:
        raylite.shutdown()


def test_wrong_token_is_refused_and_daemon_carries_on(cluster):
    address = raylite._runtime.current().daemon_address
    with pytest.raises(AuthenticationError):
        connect(address, b"x" * 32)
    assert cluster.get(cluster.remote(lambda: 5).remote()) == 5


def test_garbage_bytes_do_not_kill_the_daemon(cluster):
    import socket

    address = raylite._runtime.current().daemon_address
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.recv(20)
    s.sendall(b"\x00" * 64 + b"not a digest at all")
    s.close()
    assert cluster.get(cluster.remote(lambda: 6).remote()) == 6


def test_nested_chain_deeper_than_cpus_does_not_deadlock(cluster):
    @cluster.remote
    def chain(n):
        return 0 if n == 0 else cluster.get(chain.remote(n - 1)) + 1

    assert cluster.get(chain.remote(6), timeout=60) == 6


def test_worker_output_streams_to_driver_with_prefix(cluster, capfd):
    @cluster.remote
    def talk():
        print("hello from the worker")
        return os.getpid()

    pid = cluster.get(talk.remote())
    deadline = time.time() + 5
    out = ""
    while time.time() < deadline and "hello from the worker" not in out:
        time.sleep(0.05)
        out += capfd.readouterr().out
    assert f"(talk pid={pid}) hello from the worker" in out


def test_infeasible_task_is_reported_not_silent(cluster, capfd):
    ref = cluster.remote(num_cpus=64)(lambda: 1).remote()
    ready, _ = cluster.wait([ref], timeout=1.0)
    assert ready == []
    err = capfd.readouterr().err
    assert "CPU: 64" in err and "no node" in err
    cluster.cancel(ref)


def test_gpu_ids_and_cuda_visible_devices():
    raylite.init(num_cpus=2, num_gpus=2)
    try:
        @raylite.remote(num_gpus=1)
        def gpu():
            return raylite.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

        ids, env = raylite.get(gpu.remote())
        assert len(ids) == 1 and env == str(ids[0])
    finally:
        raylite.shutdown()


def test_custom_resources_limit_concurrency():
    raylite.init(num_cpus=2, resources={"slot": 1})
    try:
        @raylite.remote(resources={"slot": 1})
        def hold():
            t = time.time()
            time.sleep(0.3)
            return t, time.time()

        a, b = raylite.get([hold.remote(), hold.remote()])
        first, second = sorted([a, b])
        assert second[0] >= first[1] - 0.02, "two tasks held the single 'slot' at once"
        assert raylite.cluster_resources()["slot"] == 1
    finally:
        raylite.shutdown()


def test_threaded_actor_runs_calls_concurrently(cluster):
    @cluster.remote(max_concurrency=4)
    class Sleeper:
        def nap(self):
            time.sleep(0.3)
            return 1

    s = Sleeper.remote()
    cluster.get(s.nap.remote())
    t = time.time()
    assert sum(cluster.get([s.nap.remote() for _ in range(4)])) == 4
    assert time.time() - t < 0.9


def test_async_actor_interleaves_calls(cluster):
    import asyncio

    @cluster.remote
    class Gate:
        def __init__(self):
            self.event = None

        async def wait(self):
            self.event = self.event or asyncio.Event()
            await self.event.wait()
            return "released"

        async def release(self):
            self.event = self.event or asyncio.Event()
            self.event.set()

    g = Gate.remote()
    waiting = g.wait.remote()
    time.sleep(0.2)
    cluster.get(g.release.remote())
    assert cluster.get(waiting, timeout=10) == "released"


def _driver(code: str, address: str, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    script = "import raylite\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, address], capture_output=True, text=True,
                          timeout=60, env=env)


def test_two_drivers_share_a_cluster_and_a_detached_actor(cluster):
    address = raylite._runtime.current().daemon_address
    out = _driver("""
        import sys
        raylite.init(address=sys.argv[1], namespace="shared")
        @raylite.remote
        class Counter:
            def __init__(self): self.n = 0
            def inc(self): self.n += 1; return self.n
        c = Counter.options(name="counter", lifetime="detached").remote()
        print(raylite.get(c.inc.remote()))
    """, address)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("1")
    c = raylite.get_actor("counter", namespace="shared")
    assert raylite.get(c.inc.remote()) == 2
    raylite.kill(c)


def test_driver_exit_kills_its_non_detached_actors(cluster):
    address = raylite._runtime.current().daemon_address
    out = _driver("""
        import sys
        raylite.init(address=sys.argv[1], namespace="gone")
        @raylite.remote
        class A:
            def ping(self): return "pong"
        a = A.options(name="temp").remote()
        print(raylite.get(a.ping.remote()))
    """, address)
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            raylite.get_actor("temp", namespace="gone")
        except ValueError:
            return
        time.sleep(0.05)
    pytest.fail("the actor outlived its driver")


def test_a_driver_s_placement_groups_end_with_it_unless_detached(cluster):
    address = raylite._runtime.current().daemon_address
    out = _driver("""
        import sys
        from raylite.util.placement_group import placement_group
        raylite.init(address=sys.argv[1], namespace="groups")
        kept = placement_group([{"CPU": 1}], name="kept", lifetime="detached")
        temp = placement_group([{"CPU": 1}], name="temp")
        print(kept.wait(30), temp.wait(30))
    """, address)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
    rt = raylite._runtime.current()
    deadline = time.time() + 5
    while rt.placement_groups(None, None) and time.time() < deadline:
        states = {r.name: r.state for r in rt.placement_groups(None, None)}
        if states == {"kept": "CREATED", "temp": "REMOVED"}:
            break
        time.sleep(0.05)
    assert {r.name: r.state for r in rt.placement_groups(None, None)} == \
        {"kept": "CREATED", "temp": "REMOVED"}
    assert raylite.available_resources()["CPU"] == 1           # only the detached one holds
    out = _driver("""
        import sys
        from raylite.util.placement_group import get_placement_group, remove_placement_group
        raylite.init(address=sys.argv[1], namespace="groups")
        remove_placement_group(get_placement_group("kept"))  # found by name from a new driver
    """, address)
    assert out.returncode == 0, out.stderr
    assert raylite.available_resources()["CPU"] == 2


def test_joining_with_num_cpus_raises(cluster):
    address = raylite._runtime.current().daemon_address
    out = _driver("""
        import sys
        try:
            raylite.init(address=sys.argv[1], num_cpus=3)
        except ValueError as e:
            print("ValueError", e)
    """, address)
    assert "ValueError" in out.stdout, out.stderr


def test_state_reports_workers_with_their_pids(cluster):
    rt = raylite._runtime.current()
    pid = cluster.get(cluster.remote(os.getpid).remote())
    snap = rt.state(("nodes", "workers"), False)
    assert pid in [w.pid for w in snap.workers if w.state in ("IDLE", "LEASED")]
    assert snap.nodes[0].resources_total["CPU"] == 2 and snap.tasks == () and snap.objects == ()


def test_concurrency_groups_limit_each_group(cluster):
    @cluster.remote(concurrency_groups={"io": 2})
    class A:
        @cluster.method(concurrency_group="io")
        def io(self):
            time.sleep(0.3)
            return 1

        def compute(self):
            time.sleep(0.3)
            return 2

    a = A.remote()
    cluster.get(a.compute.remote())
    t = time.time()
    assert cluster.get([a.io.remote(), a.io.remote(), a.compute.remote()]) == [1, 1, 2]
    assert time.time() - t < 0.55, "groups did not run side by side"
    t = time.time()
    cluster.get([a.compute.remote(), a.compute.remote()])
    assert time.time() - t >= 0.55, "the default group (max_concurrency=1) ran two calls at once"


def test_max_calls_retires_the_worker(cluster):
    @cluster.remote(max_calls=1)
    def pid():
        return os.getpid()

    assert len(set(cluster.get([pid.remote() for _ in range(4)]))) == 4


def test_max_pending_calls(cluster):
    @cluster.remote(max_pending_calls=2)
    class B:
        def nap(self):
            time.sleep(0.3)

    b = B.remote()
    cluster.get(b.nap.remote())
    pending = [b.nap.remote(), b.nap.remote()]
    with pytest.raises(raylite.exceptions.PendingCallsLimitExceeded):
        b.nap.remote()
    cluster.get(pending)
    cluster.get(b.nap.remote())


def test_accelerator_type_is_a_resource_demand():
    raylite.init(num_cpus=1, resources={"accelerator_type:T4": 1})
    try:
        f = raylite.remote(accelerator_type="T4")(lambda: "ran")
        assert raylite.get(f.remote(), timeout=10) == "ran"
    finally:
        raylite.shutdown()


def test_actor_ends_when_its_last_handle_goes(cluster):
    import psutil

    @cluster.remote
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    pid = cluster.get(a.pid.remote())
    kept = A.options(name="kept").remote()
    kept_pid = cluster.get(kept.pid.remote())
    del a, kept  # the named one stays: others may look it up
    deadline = time.time() + 10
    while time.time() < deadline and psutil.pid_exists(pid):
        time.sleep(0.05)
    assert not psutil.pid_exists(pid), "an unreferenced actor kept its process"
    assert psutil.pid_exists(kept_pid)
    assert cluster.get(cluster.get_actor("kept").pid.remote()) == kept_pid


def test_actor_with_a_handle_sent_away_is_kept(cluster):
    @cluster.remote
    class A:
        def ping(self):
            return "pong"

    @cluster.remote
    class Holder:
        def __init__(self, handle):
            self.handle = handle

        def ping_it(self):
            return cluster.get(self.handle.ping.remote())

    a = A.remote()
    h = Holder.remote(a)
    del a
    time.sleep(0.3)
    assert cluster.get(h.ping_it.remote(), timeout=10) == "pong"


def test_daemon_survives_bad_messages_from_an_authenticated_peer(cluster):
    rt = raylite._runtime.current()
    conn = connect(rt.daemon_address, rt._token)
    conn.send(12345)                                        # not a message at all
    conn.send(m.RequestLease(7, "not a dict", "bad"))       # a message with nonsense fields
    conn.send(m.KillActor(b"no such actor", True))
    conn.sock.sendall(b"\x00\x00\x00\x05junk!")             # a frame that does not unpickle
    time.sleep(0.2)
    conn.close()
    assert cluster.get(cluster.remote(lambda: "alive").remote()) == "alive"
    assert cluster.nodes()[0]["Alive"]


def test_functions_from_the_callers_modules(cluster, tmp_path, monkeypatch):
    import importlib

    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "raylite_helper_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    (pkg / "raylite_gone_mod.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(pkg))
    helper = importlib.import_module("raylite_helper_mod")
    gone = importlib.import_module("raylite_gone_mod")
    assert cluster.get(cluster.remote(helper.triple).remote(5)) == 15  # found via our sys.path

    (pkg / "raylite_gone_mod.py").unlink()  # the worker cannot import it any more
    f = cluster.remote(max_retries=0)(gone.twice)
    for _ in range(2):  # the second call on the same connection carries no bytes
        with pytest.raises(ModuleNotFoundError):
            cluster.get(f.remote(1), timeout=30)
    assert cluster.get(cluster.remote(helper.triple).remote(1)) == 3


def test_dependencies_finishing_during_submission_are_not_missed(cluster):
    # A dependency that completes between argument preparation and callback registration
    # once left its dependent task waiting forever; reduction trees hit that window often.
    @cluster.remote
    def add(x, y):
        return x + y

    for _ in range(30):
        level = [cluster.put(i) for i in range(64)]
        while len(level) > 1:
            level = [add.remote(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        assert cluster.get(level[0], timeout=20) == sum(range(64))


def test_daemon_replies_to_a_peer_that_left_without_a_traceback(capfd):
    raylite.init(num_cpus=1)  # started here, not by a fixture: capfd holds fd 2 only from now
    try:
        rt = raylite._runtime.current()
        conn = connect(rt.daemon_address, rt._token)
        conn.send_many([m.GetActorInfo(i, b"x" * 16, None, None, False) for i in range(1, 50)]
                       + [m.GetState(50)])
        conn.close()                                        # gone before the replies
        time.sleep(0.5)
        assert raylite.get(raylite.remote(lambda: "alive").remote()) == "alive"
    finally:
        raylite.shutdown()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "error handling" not in err, err


def test_quick_init_and_shutdown_print_nothing():
    """Workers still starting when the cluster stops die on purpose: the daemon says nothing
    about them (it used to warn that each was "killed ... before it registered")."""
    code = "import raylite\nfor _ in range(3):\n    raylite.init(num_cpus=2)\n    raylite.shutdown()\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
