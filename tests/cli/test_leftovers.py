"""Nothing a daemon leaves grows forever: `raylite stop` cleans up after daemons that died
(killed -9 by someone else, driver-started heads whose driver died too), and the daemon
logs `raylite start` appends to are rotated at a size cap."""
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

from test_cli import _group, _live, _records, _wait_until, head, raylite, temps  # noqa: F401

from raylite._node.log_file import RotatingStderr
from sessions import is_cleaned

HOLD = textwrap.dedent("""
    import glob, os, sys, time
    import raylite
    raylite.init(**eval(sys.argv[1]))
    keep = raylite.put(b"x" * 1_000_000)  # a shared-memory segment named by the node id
    raylite.get(raylite.remote(lambda: print("a worker's line, in the session's logs/",
                                             file=sys.stderr)).remote())
    logs = os.path.join(os.environ["RAYLITE_TEMP_DIR"], "session_*", "logs", "worker-*.err")
    deadline = time.monotonic() + 10  # its worker's pump writes the file on its own thread
    while not glob.glob(logs) and time.monotonic() < deadline:
        time.sleep(0.02)
    print("ready", flush=True)
    time.sleep(60)
""")


def _kill_with_its_driver(pid: int, temp, init_args: str) -> tuple[str, list]:
    """Starts a driver holding a segment of the daemon `pid` (None: the driver starts its own
    head), then kills both with SIGKILL. Returns the daemon's session dir and segments."""
    driver = subprocess.Popen([sys.executable, "-c", HOLD, init_args], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    try:
        assert driver.stdout.readline().strip() == "ready"
        if pid is None:
            [session] = glob.glob(os.path.join(temp, "session_*"))
            pid = int(session.rpartition("_")[2])
        else:
            [session] = [s for kind, p, s in _records(temp) if p == pid]
        node_id = json.load(open(os.path.join(session, "node.json")))["node_id"]
        segments = glob.glob(f"/dev/shm/raylite_{node_id[:12]}_*")
        assert segments
        group = _group(pid)
        driver.send_signal(signal.SIGSTOP)  # it frees nothing while its daemon dies
        os.kill(pid, signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()
    assert _wait_until(lambda: not any(_live(p) for p in group), timeout=10)
    return session, segments


def test_stop_cleans_up_after_a_head_killed_by_someone_else(head):
    temp, _ = head
    [(_, pid, _)] = _records(temp)
    session, segments = _kill_with_its_driver(pid, temp, "{'address': 'auto'}")
    assert all(os.path.exists(s) for s in segments) and os.path.exists(session)
    out = raylite("stop", temp=temp)
    assert f"pid {pid} is no longer a raylite daemon" in out.stdout
    assert f"cleaned up after the dead daemon {pid}: removed {len(segments)} shared-memory" \
        in out.stdout, out.stdout
    assert not any(os.path.exists(s) for s in segments)
    assert is_cleaned(session) and _records(temp) == []
    # the dead head's logs stay readable, as a clean stop's do, until the next head starts
    assert os.listdir(session) == ["logs"] and os.listdir(os.path.join(session, "logs"))
    logs = raylite("logs", temp=temp)
    assert logs.returncode == 0, logs.stdout + logs.stderr


def test_stop_cleans_up_after_a_driver_started_head_that_died(temps):
    temp = temps()
    session, segments = _kill_with_its_driver(None, temp, "{'num_cpus': 1}")
    out = raylite("stop", temp=temp)
    assert "cleaned up after the dead daemon" in out.stdout and "no running" in out.stdout
    assert not any(os.path.exists(s) for s in segments)
    assert is_cleaned(session)


def test_stop_leaves_the_session_of_a_live_daemon_alone(temps):
    temp = temps()
    driver = subprocess.Popen([sys.executable, "-c", HOLD, "{'num_cpus': 1}"],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    try:
        assert driver.stdout.readline().strip() == "ready"
        [session] = glob.glob(os.path.join(temp, "session_*"))
        node_id = json.load(open(os.path.join(session, "node.json")))["node_id"]
        segments = glob.glob(f"/dev/shm/raylite_{node_id[:12]}_*")
        out = raylite("stop", temp=temp)
        assert "cleaned up" not in out.stdout and "no running" in out.stdout
        assert os.path.exists(session) and segments and all(os.path.exists(s) for s in segments)
    finally:
        driver.terminate()  # its shutdown hook stops the head it started
        driver.wait(timeout=30)
        driver.stdout.close()


def test_the_daemon_log_is_rotated_at_its_cap(temps):
    temp = temps()
    cap = 2000
    raylite("start", "--head", "--port", "0", "--num-cpus", "1", temp=temp,
            env={"RAYLITE_ROTATION_MAX_BYTES": str(cap), "RAYLITE_ROTATION_BACKUP_COUNT": "2"})
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        import raylite
        raylite.init(address="auto")

        @raylite.remote
        def f():
            pass

        refs = [f.options(resources={f"r{i}": 1}).remote() for i in range(40)]  # each one
        time.sleep(60)                                    # logs "no node has that much"
    """)], stderr=subprocess.DEVNULL, env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    log = temp / "raylite_head.log"
    try:
        assert _wait_until(lambda: "r39: 1" in log.read_text(), timeout=30)
    finally:
        driver.kill()
        driver.wait()
    files = sorted(glob.glob(f"{log}*"))
    assert files == [str(log), f"{log}.1", f"{log}.2"]
    assert all(0 < os.path.getsize(f) <= cap for f in files), [os.path.getsize(f) for f in files]
    assert all(os.stat(f).st_mode & 0o777 == 0o600 for f in files)


def test_rotation_keeps_every_file_under_the_cap(tmp_path):
    path = str(tmp_path / "x.log")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    handler = RotatingStderr(path, 1000, 1, fd=fd)
    try:
        for i in range(100):
            handler.handle(logging.makeLogRecord({"msg": f"line {i} " + "x" * 50,
                                                  "levelno": logging.WARNING}))
    finally:
        os.close(handler.fd)
    assert sorted(os.listdir(tmp_path)) == ["x.log", "x.log.1"]
    assert all(os.path.getsize(tmp_path / f) <= 1000 for f in ("x.log", "x.log.1"))
    assert "line 99 " in (tmp_path / "x.log").read_text()
