"""The raylite command, run as a user would (subprocesses), against private temp dirs.

Every temp dir a test starts something in is stopped with `raylite stop --force`
when the test ends, pass or fail (the `temps` fixture).
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from sessions import is_cleaned


def raylite(*args, temp, check=True, timeout=30, env=None):
    out = subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", str(temp)],
                         capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, **(env or {})))
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture
def temps(tmp_path):
    """temps(name) -> a fresh temp dir, stopped (--force) at the end of the test."""
    made = []

    def make(name="t"):
        d = tmp_path / name
        made.append(d)
        return d

    yield make
    for d in made:
        raylite("stop", "--force", temp=d, check=False)


def _address(stdout):
    return stdout.split(" started at ")[1].split()[0]


@pytest.fixture
def head(temps):
    temp = temps()
    out = raylite("start", "--head", "--port", "0", "--num-cpus", "2", temp=temp)
    return _Head((temp, _address(out.stdout)), out.stdout)


class _Head(tuple):
    """(temp dir, address), plus the banner `raylite start` printed."""

    def __new__(cls, pair, banner):
        self = super().__new__(cls, pair)
        self.banner = banner
        return self


def _records(temp):
    """(kind, pid, session dir) of everything `raylite start` recorded in `temp`."""
    out = []
    rec = temp / "raylite_current_cluster"
    if rec.exists():
        _, pid, session = rec.read_text().split()
        out.append(("head", int(pid), session))
    for p in sorted((temp / "raylite_nodes").glob("*")):
        _, pid, session, _head = p.read_text().split()
        out.append(("node", int(pid), session))
    return out


def _live(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(pgid):
    """Live processes in a daemon's process group: the daemon, its zygote, its workers."""
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return out


def _wait_until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def _driver(temp, code, **kw):
    env = dict(os.environ, RAYLITE_TEMP_DIR=str(temp))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=30, **kw)


# -- the command itself -------------------------------------------------------------------
def test_help_is_quick_and_lists_commands():
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "raylite", "--help"], capture_output=True, text=True)
    assert time.monotonic() - t < 5
    for cmd in ("start", "stop", "status", "memory", "job", "microbenchmark"):
        assert cmd in out.stdout
    script = os.path.join(os.path.dirname(sys.executable), "raylite")
    if os.path.exists(script):  # the console script is the same command
        assert subprocess.run([script, "--help"], capture_output=True, text=True).stdout == out.stdout


def test_help_imports_no_command():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from raylite.cli.main import build_parser
        build_parser().format_help()
        print(sorted(m for m in sys.modules if m.startswith(("raylite.cli.", "raylite._protocol",
                                                             "raylite._runtime.cluster"))))
    """)], capture_output=True, text=True)
    assert out.stdout.strip() == "['raylite.cli.main']", out.stdout + out.stderr


def test_start_help_says_what_runs_on_joined_nodes():
    out = subprocess.run([sys.executable, "-m", "raylite", "start", "--help"], capture_output=True,
                         text=True)
    text = " ".join(out.stdout.split())
    assert "spill" not in text and "or ask for it (SPREAD, node affinity), run there" in text
    assert "--node-ip-address" in text and "--labels" in text and "--block" in text


# -- start --head, status, a driver, stop ---------------------------------------------------
def test_start_status_driver_stop(head):
    temp, address = head
    status = raylite("status", temp=temp).stdout
    assert f"raylite cluster at {address}" in status and "nodes (1 alive)" in status
    assert "CPU" in status and "/ 2" in status and "workers (head node)" in status
    out = _driver(temp, """
        import raylite
        raylite.init(address="auto")
        print(raylite.get(raylite.remote(lambda: "ran").remote()))
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ran", out.stderr
    [(_, pid, session)] = _records(temp)
    group = _group(pid)
    assert pid in group and len(group) >= 3  # daemon, zygote, warm workers
    out = raylite("stop", temp=temp)
    assert f"stopped head {address} (pid {pid})" in out.stdout
    assert not any(_live(p) for p in group)
    assert _records(temp) == [] and is_cleaned(session)
    out = raylite("status", temp=temp, check=False)
    assert out.returncode == 1 and "raylite start --head" in out.stderr


def test_start_prints_how_to_connect_and_the_token(head):
    temp, address = head
    [(_, pid, session)] = _records(temp)
    token = open(os.path.join(session, "token")).read().strip()
    text = head.banner
    assert f"started at {address} (pid {pid})" in text
    assert 'raylite.init(address="auto")' in text and f'raylite.init(address="{address}")' in text
    assert f"RAYLITE_CLUSTER_TOKEN={token}" in text and "raylite stop" in text


def test_status_counts_actors_and_pending_demands(head):
    temp, _ = head
    code = """
        import subprocess, sys, os
        import raylite
        raylite.init(address="auto")

        @raylite.remote
        class A:
            def ping(self):
                return 1

        a = A.remote()
        raylite.get(a.ping.remote())
        pending = raylite.remote(num_cpus=64)(lambda: 0).remote()
        print(subprocess.run([sys.executable, "-m", "raylite", "status", "--temp-dir",
                              os.environ["RAYLITE_TEMP_DIR"]], capture_output=True, text=True).stdout)
    """
    out = _driver(temp, code)
    assert out.returncode == 0, out.stderr
    assert "actors: 1 ALIVE" in out.stdout and "drivers: 1" in out.stdout
    assert "pending lease requests: 1: {CPU: 64}" in out.stdout


def test_status_says_what_the_object_store_spilled(temps):
    temp = temps()
    raylite("start", "--head", "--port", "0", "--num-cpus", "1", "--object-store-memory",
            str(100 * 2**20), temp=temp)
    code = """
        import subprocess, sys, os
        import numpy as np
        import raylite
        raylite.init(address="auto")
        held = [raylite.put(np.zeros(40 * 2**20, dtype=np.uint8)) for _ in range(3)]  # 120 MiB
        print(subprocess.run([sys.executable, "-m", "raylite", "status", "--temp-dir",
                              os.environ["RAYLITE_TEMP_DIR"]], capture_output=True, text=True).stdout)
    """
    out = _driver(temp, code)
    assert out.returncode == 0, out.stderr
    assert "80.0 / 100.0 MiB in shared memory, 40.0 MiB spilled, 3 objects" in out.stdout
    assert "spilled since start: 1 object, 40.0 MiB" in out.stdout, out.stdout
    assert "spilling to disk now" not in out.stdout  # the put returned: its copy is done


def test_second_head_is_refused(head):
    temp, address = head
    out = raylite("start", "--head", "--port", "0", temp=temp, check=False)
    assert out.returncode == 1 and "raylite stop" in out.stderr and address in out.stderr
    assert len(_records(temp)) == 1


@pytest.mark.parametrize("flags, text", [
    (["--head", "--resources", "{not json"], "--resources is not valid JSON"),
    (["--head", "--resources", "[1, 2]"], "JSON object"),
    (["--head", "--resources", '{"CPU": 2}'], "--num-cpus"),
    (["--head", "--resources", '{"disk": -1}'], "'disk' must be a number >= 0"),
    (["--head", "--resources", '{"disk": "many"}'], "'disk' must be a number >= 0"),
    (["--head", "--num-cpus", "-1"], "--num-cpus must be a number >= 0"),
    (["--address", "nonsense"], "HOST:PORT"),
    ([], "--head"),
    (["--head", "--address", "127.0.0.1:1"], "not allowed with"),
])
def test_bad_flags_exit_2(temps, flags, text):
    temp = temps()
    out = raylite("start", *flags, temp=temp, check=False)
    assert out.returncode == 2 and text in out.stderr, out.stderr
    assert _records(temp) == []


def test_port_in_use_is_a_clear_error(head, temps):
    _, address = head
    other = temps("other")
    out = raylite("start", "--head", "--port", address.rpartition(":")[2], temp=other, check=False)
    assert out.returncode == 1 and "cannot listen" in out.stderr and "--port" in out.stderr
    assert _records(other) == [] and not glob.glob(str(other / "session_*"))


# -- start --address: a node joins the head -----------------------------------------------
def test_node_joins_head_and_stop_stops_both(head):
    temp, address = head
    out = raylite("start", "--address", address, "--num-cpus", "1", "--resources", '{"disk": 2}',
                  temp=temp)
    assert f"joined {address}" in out.stdout and "Tasks run there when" in out.stdout
    out = _driver(temp, """
        import raylite
        raylite.init(address="auto")
        r = raylite.cluster_resources()
        print(len(raylite.nodes()), r["CPU"], r["disk"], raylite.available_resources()["disk"])
    """)
    assert out.stdout.split() == ["2", "3.0", "2.0", "2.0"], out.stderr
    status = raylite("status", temp=temp).stdout
    assert "nodes (2 alive)" in status and " / 3" in status
    recs = _records(temp)
    assert [k for k, _, _ in recs] == ["head", "node"]
    groups = [p for _, pid, _ in recs for p in _group(pid)]
    out = raylite("stop", temp=temp)
    assert "stopped node" in out.stdout and "stopped head" in out.stdout
    assert not any(_live(p) for p in groups)
    assert _records(temp) == [] and not any(os.path.exists(s) for _, _, s in recs)


def test_a_driver_on_a_joined_node_uses_the_heads_gcs(head):
    """One GCS: what a driver of the joined node creates, a driver of the head finds."""
    temp, address = head
    raylite("start", "--address", address, "--num-cpus", "1", temp=temp)
    [node_record] = (temp / "raylite_nodes").glob("*")
    node_address = node_record.read_text().split()[0]
    out = _driver(temp, f"""
        import raylite
        raylite.init(address="{node_address}", namespace="shared")

        @raylite.remote
        class Box:
            def where(self):
                return raylite.get_runtime_context().get_node_id()

        box = Box.options(name="box", lifetime="detached").remote()
        raylite.get(box.where.remote())
        print(sorted(n["IsHead"] for n in raylite.nodes()), len(raylite.nodes()))
    """)
    assert out.stdout.split("\n")[0] == "[False, True] 2", out.stdout + out.stderr
    out = _driver(temp, """
        import raylite
        raylite.init(address="auto", namespace="shared")
        box = raylite.get_actor("box")
        head = [n["NodeID"] for n in raylite.nodes() if n["IsHead"]]
        print(raylite.get(box.where.remote()) in head)
        raylite.kill(box)
    """)
    assert out.stdout.strip() == "True", out.stdout + out.stderr


def test_node_stops_when_its_head_goes_away(head):
    temp, address = head
    raylite("start", "--address", address, "--num-cpus", "1", temp=temp)
    (_, head_pid, _), (_, node_pid, _) = _records(temp)
    os.kill(head_pid, signal.SIGTERM)  # not through `raylite stop`: the head just goes away
    assert _wait_until(lambda: not _group(node_pid) and not _group(head_pid))
    assert _records(temp) == []


def test_join_errors_are_clear(head, temps):
    temp, address = head
    lonely = temps("lonely")  # no session of that head here, no token in the environment
    out = raylite("start", "--address", address, temp=lonely, check=False,
                  env={"RAYLITE_CLUSTER_TOKEN": ""})
    assert out.returncode == 1 and "No token" in out.stderr and "RAYLITE_CLUSTER_TOKEN" in out.stderr
    out = raylite("start", "--address", address, temp=lonely, check=False,
                  env={"RAYLITE_CLUSTER_TOKEN": "00" * 32})
    assert out.returncode == 1 and "refused" in out.stderr
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    out = raylite("start", "--address", f"127.0.0.1:{free}", temp=lonely, check=False,
                  env={"RAYLITE_CLUSTER_TOKEN": "00" * 32})
    assert out.returncode == 1 and "Cannot reach" in out.stderr
    assert _records(lonely) == [] and not glob.glob(str(lonely / "session_*"))
    assert "nodes (1 alive)" in raylite("status", temp=temp).stdout


# -- stop -------------------------------------------------------------------------------
def test_force_stop_kills_busy_workers_and_frees_what_the_daemon_held(head):
    temp, _ = head
    [(_, pid, session)] = _records(temp)
    node_id = json.load(open(os.path.join(session, "node.json")))["node_id"]
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        import raylite
        raylite.init(address="auto")
        keep = raylite.put(b"x" * 1_000_000)  # a shared-memory segment the daemon accounts for

        @raylite.remote
        def busy():
            print("busy", flush=True)
            time.sleep(60)

        ref = busy.remote()
        time.sleep(0.3)
        print("ready", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    try:
        seen = {driver.stdout.readline().strip().rpartition(" ")[2] for _ in range(2)}
        assert seen == {"busy", "ready"}  # a worker is in the middle of a task
        segments = glob.glob(f"/dev/shm/raylite_{node_id[:12]}_*")
        assert segments
        group = _group(pid)
        t = time.monotonic()
        out = raylite("stop", "--force", temp=temp)
        assert time.monotonic() - t < 5
        assert "killed head" in out.stdout
        assert not any(_live(p) for p in group)  # the busy worker too
        assert not any(os.path.exists(s) for s in segments)
        assert is_cleaned(session) and _records(temp) == []
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()


def test_stop_never_signals_a_stranger_holding_a_recorded_pid(temps):
    temp = temps()
    temp.mkdir(mode=0o700)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as stranger:
        try:
            (temp / "raylite_current_cluster").write_text(f"127.0.0.1:1 {stranger.pid} /nowhere\n")
            out = raylite("status", temp=temp, check=False)
            assert out.returncode == 1
            out = raylite("stop", temp=temp)
            assert "no longer a raylite daemon" in out.stdout and "no running" in out.stdout
            assert stranger.poll() is None
            assert _records(temp) == []
            (temp / "raylite_current_cluster").write_text(f"127.0.0.1:1 {stranger.pid} /nowhere\n")
            out = raylite("start", "--head", "--port", "0", "--num-cpus", "1", temp=temp)
            assert "head started" in out.stdout
        finally:
            stranger.kill()


def test_stop_with_nothing_running(temps):
    out = raylite("stop", temp=temps())
    assert out.returncode == 0 and "no running" in out.stdout


# -- --block ----------------------------------------------------------------------------
def test_block_runs_in_the_foreground_until_sigterm(temps):
    temp = temps()
    cli = subprocess.Popen([sys.executable, "-m", "raylite", "start", "--head", "--block",
                            "--port", "0", "--num-cpus", "1", "--temp-dir", str(temp)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or "Stop it" not in lines[-1]:
            line = cli.stdout.readline()
            assert line, cli.stderr.read()
            lines.append(line)
        assert "Ctrl-C" in lines[-1]
        [(_, pid, _)] = _records(temp)
        assert "nodes (1 alive)" in raylite("status", temp=temp).stdout
        group = _group(pid)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=10) == 0
        assert "stopped head" in cli.stdout.read()
        assert not any(_live(p) for p in group) and _records(temp) == []
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stdout.close()
        cli.stderr.close()


# -- drivers sharing a started cluster ---------------------------------------------------
def test_memory_lists_objects(head):
    temp, _ = head
    out = _driver(temp, """
        import subprocess, sys, os
        import raylite
        raylite.init(address="auto")
        ref = raylite.put(b"x" * 300_000)
        print(ref.hex())
        print(subprocess.run([sys.executable, "-m", "raylite", "memory", "--temp-dir",
                              os.environ["RAYLITE_TEMP_DIR"]], capture_output=True, text=True).stdout)
    """)
    assert out.returncode == 0, out.stderr
    ref_hex, table = out.stdout.split("\n", 1)
    assert ref_hex in table and "shm" in table and "local=1" in table


def test_two_drivers_share_a_started_cluster_and_a_detached_actor(head):
    temp, _ = head
    first = _driver(temp, """
        import raylite
        raylite.init(address="auto", namespace="team")

        @raylite.remote
        class Board:
            def __init__(self):
                self.notes = []

            def post(self, note):
                self.notes.append(note)
                return list(self.notes)

        board = Board.options(name="board", lifetime="detached").remote()
        print(raylite.get(board.post.remote("first driver")))
    """)
    assert first.returncode == 0, first.stderr
    second = _driver(temp, """
        import raylite
        raylite.init(address="auto", namespace="team")
        board = raylite.get_actor("board")
        print(raylite.get(board.post.remote("second driver")))
        raylite.kill(board)
    """)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "['first driver', 'second driver']"
