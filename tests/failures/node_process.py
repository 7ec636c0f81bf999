"""A node daemon a test starts itself: its pid, session dir, token and log are the test's
(the `node` fixture: a 2-CPU daemon, drivers of the test join it, stopped after the test)."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest

import raylite


class Node:
    def __init__(self, tmp_path, num_cpus: int = 2):
        self.token = os.urandom(32).hex()
        self.log_path = tmp_path / "node.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "raylite._node.main", "--num-cpus", str(num_cpus),
                 "--temp-dir", str(tmp_path / "raylite")],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                env=dict(os.environ, RAYLITE_CLUSTER_TOKEN=self.token), start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        self.proc.stdout.close()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the node daemon did not start: {line!r} {self.log()}")
        _, self.address, self.session_dir = line.split()
        with open(os.path.join(self.session_dir, "node.json")) as f:
            self.zygote_pid = json.load(f)["zygote_pid"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> int:
        """SIGTERM, then (if it hangs) SIGKILL (its zygote and workers die with it); returns
        its exit code."""
        if raylite.is_initialized():
            raylite.shutdown()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the node daemon did not stop within 20s of SIGTERM")


@pytest.fixture
def node(tmp_path, monkeypatch):
    n = Node(tmp_path)
    monkeypatch.setenv("RAYLITE_CLUSTER_TOKEN", n.token)
    yield n
    n.stop()
