"""The raylite command, run as a user would, against a private temp dir."""
import os
import subprocess
import sys
import textwrap

import psutil
import pytest


def raylite(*args, temp, check=True, timeout=60):
    out = subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", str(temp)],
                         capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture
def head(tmp_path):
    out = raylite("start", "--head", "--port", "0", "--num-cpus", "2", temp=tmp_path)
    address = out.stdout.split(" started at ")[1].split()[0]
    yield tmp_path, address
    raylite("stop", "--force", temp=tmp_path)


def _pids(temp):
    pids = []
    rec = temp / "raylite_current_cluster"
    if rec.exists():
        pids.append(int(rec.read_text().split()[1]))
    nodes = temp / "raylite_nodes"
    if nodes.exists():
        pids += [int(p.name) for p in nodes.iterdir()]
    return pids


def _driver(temp, code):
    env = dict(os.environ, RAYLITE_TEMP_DIR=str(temp))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=60)


def test_help_is_quick_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "raylite", "--help"], capture_output=True, text=True)
    for cmd in ("start", "stop", "status", "memory", "microbenchmark"):
        assert cmd in out.stdout


def test_start_status_driver_stop(head):
    temp, address = head
    status = raylite("status", temp=temp).stdout
    assert "nodes (1 alive)" in status and "CPU" in status
    out = _driver(temp, """
        import raylite
        raylite.init(address="auto")
        print(raylite.get(raylite.remote(lambda: "ran").remote()))
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ran", out.stderr
    pids = _pids(temp)
    assert pids and all(psutil.pid_exists(p) for p in pids)
    out = raylite("stop", temp=temp)
    assert "stopped head" in out.stdout
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    assert raylite("status", temp=temp, check=False).returncode == 1


def test_second_head_is_refused(head):
    temp, _ = head
    out = raylite("start", "--head", "--port", "0", temp=temp, check=False)
    assert out.returncode == 1 and "raylite stop" in out.stderr


def test_bad_resources_json(tmp_path):
    out = raylite("start", "--head", "--resources", "{not json", temp=tmp_path, check=False)
    assert out.returncode == 2 and "--resources" in out.stderr


def test_node_joins_head(head):
    temp, address = head
    out = raylite("start", "--address", address, "--num-cpus", "1", temp=temp)
    assert "joined" in out.stdout
    out = _driver(temp, """
        import raylite
        raylite.init(address="auto")
        print(len(raylite.nodes()), raylite.cluster_resources()["CPU"])
    """)
    assert out.stdout.split() == ["2", "3.0"], out.stderr
    assert "nodes (2 alive)" in raylite("status", temp=temp).stdout


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


def test_stop_with_nothing_running(tmp_path):
    assert "no running" in raylite("stop", temp=tmp_path).stdout


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
