"""init() semantics: idempotent, synchronized, shutdown hooks, auto-init, fork safety."""
import os
import subprocess
import sys
import threading

import pytest

import raylite
from raylite import _runtime


@pytest.fixture
def local_env(monkeypatch):
    monkeypatch.setenv("RAYLITE_LOCAL_MODE", "1")
    yield
    raylite.shutdown()


def test_second_init_raises_unless_ignored(local_env):
    ctx = raylite.init()
    with pytest.raises(RuntimeError, match="shutdown"):
        raylite.init()
    rt = _runtime.current()
    again = raylite.init(ignore_reinit_error=True)
    assert again.node_id == ctx.node_id and again.namespace == ctx.namespace
    assert _runtime.current() is rt


def test_context_manager_and_shutdown_twice(local_env):
    with raylite.init() as ctx:
        assert ctx.namespace and ctx.node_id and raylite.is_initialized()
    assert not raylite.is_initialized()
    raylite.shutdown()
    raylite.shutdown()
    raylite.init()
    assert raylite.get(raylite.put(3)) == 3


def test_unknown_keyword_names_it(local_env):
    with pytest.raises(RuntimeError, match="num_cpu"):
        raylite.init(num_cpu=2)
    with pytest.raises(ValueError):
        raylite.init(num_cpus=-1)


def test_32_threads_init_once(local_env):
    seen, errors = [], []
    barrier = threading.Barrier(32)

    def go():
        try:
            barrier.wait()
            raylite.init(ignore_reinit_error=True)
            seen.append(_runtime.current())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(rt) for rt in seen}) == 1 and len(seen) == 32


def test_init_racing_shutdown(local_env):
    errors = []

    def churn(i):
        try:
            for _ in range(20):
                if i % 2:
                    raylite.init(ignore_reinit_error=True)
                else:
                    raylite.shutdown()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    raylite.init(ignore_reinit_error=True)
    assert raylite.get(raylite.put(1)) == 1


def _first_calls():
    @raylite.remote
    def f():
        return 4

    @raylite.remote
    class A:
        def ping(self):
            return "pong"

    return {
        "task": lambda: raylite.get(f.remote()) == 4,
        "actor": lambda: raylite.get(A.remote().ping.remote()) == "pong",
        "put": lambda: raylite.get(raylite.put(5)) == 5,
        # a ref this process never made: get() initializes, then reports the object lost
        "get": lambda: pytest.raises(raylite.exceptions.ObjectLostError, raylite.get,
                                     raylite.ObjectRef(b"\0" * 16)),
    }


@pytest.mark.parametrize("call", ["task", "actor", "put", "get"])
def test_auto_init_on_first_call(local_env, call):
    assert not raylite.is_initialized()
    assert _first_calls()[call]()
    assert raylite.is_initialized()
    assert _runtime.current().name == "local"


@pytest.mark.parametrize("call", ["task", "actor", "put", "get"])
def test_auto_init_can_be_turned_off(monkeypatch, call):
    monkeypatch.setenv("RAYLITE_AUTO_INIT", "0")
    with pytest.raises(RuntimeError, match="RAYLITE_AUTO_INIT=0.*raylite.init"):
        _first_calls()[call]()
    assert not raylite.is_initialized()


def test_forked_child_does_not_reuse_runtime(local_env):
    raylite.init()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"1" if raylite.is_initialized() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"0"
    assert raylite.is_initialized()


def test_forked_child_starts_its_own_runtime(local_env):
    raylite.init()
    parent_rt = _runtime.current()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            raylite.init(ignore_reinit_error=False)
            ok = _runtime.current() is not parent_rt and raylite.get(raylite.put(7)) == 7
            raylite.shutdown()
        finally:
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert _runtime.current() is parent_rt and raylite.get(raylite.put(1)) == 1


_EXIT_SCRIPT = """
import os, signal, sys
import raylite
raylite.init(local_mode=True)
rt = raylite._runtime.current()
real = rt.shutdown
def shutdown():
    print("shutdown ran", flush=True)
    real()
rt.shutdown = shutdown
if sys.argv[1] == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
print("exiting", flush=True)
"""


def test_atexit_runs_shutdown():
    out = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, "exit"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["exiting", "shutdown ran"]
    assert out.stderr == ""


def test_sigterm_runs_shutdown_then_dies_of_sigterm():
    out = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, "sigterm"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == -15, (out.returncode, out.stderr)
    assert out.stdout == "shutdown ran\n"


def test_atexit_shuts_down_a_started_cluster(tmp_path):
    code = ("import raylite, os, sys\n"
            "raylite.init(num_cpus=1, _temp_dir=sys.argv[1])\n"
            "print(raylite._runtime.current()._proc.pid, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    daemon = int(out.stdout.split()[0])
    import psutil
    assert not psutil.pid_exists(daemon) or psutil.Process(daemon).status() == "zombie"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("session_")]


def test_joining_with_resources_is_rejected(monkeypatch):
    monkeypatch.setenv("RAYLITE_ADDRESS", "127.0.0.1:1")
    with pytest.raises(ValueError, match="num_cpus"):
        raylite.init(num_cpus=2)
    assert not raylite.is_initialized()


def test_joining_a_recorded_cluster_with_resources_is_rejected(monkeypatch, tmp_path):
    monkeypatch.delenv("RAYLITE_ADDRESS", raising=False)
    # a cluster `raylite start` recorded, kept "alive" by this process's pid
    (tmp_path / "raylite_current_cluster").write_text(f"127.0.0.1:1 {os.getpid()} /x\n")
    with pytest.raises(ValueError, match="num_cpus"):
        raylite.init(num_gpus=1, _temp_dir=str(tmp_path))
    with pytest.raises(ValueError, match="num_cpus"):
        raylite.init(address="auto", num_cpus=1, _temp_dir=str(tmp_path))
    assert not raylite.is_initialized()


def test_auto_address_without_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYLITE_ADDRESS", raising=False)
    with pytest.raises(ConnectionError, match="raylite start"):
        raylite.init(address="auto", _temp_dir=str(tmp_path))
    monkeypatch.setenv("RAYLITE_ADDRESS", "auto")
    with pytest.raises(ConnectionError, match="raylite start"):
        raylite.init(_temp_dir=str(tmp_path))
    assert not raylite.is_initialized()


@pytest.mark.parametrize("address,error", [("raylite://head:10001", ValueError),
                                           ("ray://no-port", ValueError),
                                           ("no-port", ValueError), (5, TypeError)])
def test_bad_addresses(address, error):
    with pytest.raises(error):
        raylite.init(address=address)
    assert not raylite.is_initialized()


def test_bad_init_values_are_rejected_before_starting_anything(local_env):
    for kwargs in (dict(num_gpus="1"), dict(resources={"CPU": 2}), dict(namespace=""),
                   dict(runtime_env={"pip": 3}), dict(runtime_env={"conda": "env"}),
                   dict(object_store_memory=-5)):
        with pytest.raises(ValueError):
            raylite.init(**kwargs)
    assert not raylite.is_initialized()
