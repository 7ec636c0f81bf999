"""A head and joined node daemons on loopback in one machine, for the tests of objects
between nodes: each daemon has its own node id (so its own /dev/shm names), its own
session dir and log; the test's drivers join the head. Stopped after the test."""
from __future__ import annotations

import os
import select
import subprocess
import sys

import pytest

import raylite


class Daemon:
    def __init__(self, tmp_path, name: str, token: str, *args: str):
        self.log_path = tmp_path / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "raylite._node.main", "--temp-dir",
                 str(tmp_path / name), *args],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                env=dict(os.environ, RAYLITE_CLUSTER_TOKEN=token), start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode() if ready else ""
        self.proc.stdout.close()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"node daemon {name} did not start: {line!r} {self.log()}")
        _, self.address, self.session_dir = line.split()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"node daemon {self.log_path.stem} did not stop within 20s")


class TwoNodes:
    """Head `a` and node `b` joined to it, 1 CPU each (b also has custom resource "b": 2)."""

    def __init__(self, tmp_path, *b_args: str):
        self.token = os.urandom(32).hex()
        self.a = Daemon(tmp_path, "a", self.token, "--num-cpus", "1")
        try:
            self.b = Daemon(tmp_path, "b", self.token, "--num-cpus", "1",
                            "--resources", '{"b": 2}', "--address", self.a.address, *b_args)
        except BaseException:
            self.a.stop()
            raise

    def stop(self) -> None:
        if raylite.is_initialized():
            raylite.shutdown()
        try:
            self.b.stop()
        finally:
            self.a.stop()


@pytest.fixture
def two_nodes(tmp_path, monkeypatch):
    nodes = TwoNodes(tmp_path)
    monkeypatch.setenv("RAYLITE_CLUSTER_TOKEN", nodes.token)
    yield nodes
    nodes.stop()
