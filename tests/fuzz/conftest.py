"""The wire-protocol fuzz tier: bad bytes and bad messages against a running head.

    head   (module) a head started by `raylite start` in a private temp dir (not a child
           of the test process, so the leak guard does not count the workers a driver's
           exit replaces), with what the tests ask of it: state(), alive(), ask(msg),
           a_driver_still_works()
    fuzz   hypothesis settings: about 30 s for the whole tier by default, the same
           examples every run; RAYLITE_FUZZ=long for many more, freshly random examples
"""
import os
import subprocess
import sys
import time

import psutil
import pytest
from hypothesis import HealthCheck, settings

from raylite._protocol import messages as m
from raylite._protocol.transport import connect

REPLY_TIMEOUT = 10.0  # a bound on a hang


@pytest.fixture
def fuzz():
    long = os.environ.get("RAYLITE_FUZZ", "") == "long"
    return settings(max_examples=3000 if long else 300, deadline=None, derandomize=not long,
                    database=None, suppress_health_check=list(HealthCheck))


def _cli(*args, temp):
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", temp],
                          capture_output=True, text=True, timeout=60)


class Head:
    def __init__(self, temp: str):
        self.temp = temp
        with open(os.path.join(temp, "raylite_current_cluster")) as f:
            self.address, pid, session = f.read().split()[:3]
        self.pid = int(pid)
        with open(os.path.join(session, "token")) as f:
            self.token = bytes.fromhex(f.read().strip())

    def connect(self):
        conn = connect(self.address, self.token)
        conn.sock.settimeout(REPLY_TIMEOUT)
        return conn

    def ask(self, msg):
        """One request on a fresh connection; its reply."""
        conn = self.connect()
        try:
            conn.send(msg)
            return conn.recv()
        finally:
            conn.close()

    def state(self) -> tuple:
        """What must not change: the GetState reply (every record, every owner asked) without
        its req."""
        reply = self.ask(m.GetState(1))
        assert type(reply) is m.StateReply
        return tuple(reply[1:])

    def settled(self, timeout: float = 20.0) -> tuple:
        """The state once every worker is idle and none is starting (the warm pool is full)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.state()
            workers = s[0].workers
            if workers and all(w.state == "IDLE" for w in workers) or time.monotonic() > deadline:
                return s
            time.sleep(0.05)

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def a_driver_still_works(self) -> None:
        """A new driver (a subprocess) joins the head and runs a task."""
        code = ("import raylite\nraylite.init(address=%r)\n"
                "print(raylite.get(raylite.remote(lambda x: x + 1).remote(41)))" % self.address)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, RAYLITE_TEMP_DIR=self.temp))
        assert out.returncode == 0 and out.stdout.split() == ["42"], out.stdout + out.stderr


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    temp = str(tmp_path_factory.mktemp("fuzz"))
    out = _cli("start", "--head", "--port", "0", "--num-cpus", "1", temp=temp)
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        yield Head(temp)
    finally:
        _cli("stop", "--force", temp=temp)
