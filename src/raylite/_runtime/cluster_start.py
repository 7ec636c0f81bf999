"""Starting a head on this machine for a driver, or finding the token to join one.

    init() ─► HeadStart(): python -m raylite._node.main --owner-pid <driver pid>
              (token handed over in the environment, never on the command line)
           ... the driver imports its runtime meanwhile (cluster_boot.create) ...
           ◄─ wait_ready(): "READY <address> <session dir>" (or "ERROR <why>") on the
              daemon's stdout

Joining a running cluster instead finds its token with join_token (_session.token_for);
when there is none because nothing listens at the address, the error says so.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys

from .. import _config
from .._session import token_for
from ..exceptions import RaySystemError

START_TIMEOUT_S = 30.0


class HeadStart:
    """A head daemon on its way up: spawned at once, waited for later (wait_ready), so the
    driver can import its runtime while the daemon boots on the other core."""

    def __init__(self, request) -> None:
        self.token = os.urandom(32)
        self.temp_dir = request.temp_dir or _config.default_temp_dir()
        cmd = [sys.executable, "-m", "raylite._node.main", "--owner-pid", str(os.getpid()),
               "--temp-dir", self.temp_dir]
        if request.num_cpus is not None:
            cmd += ["--num-cpus", str(request.num_cpus)]
        if request.num_gpus is not None:
            cmd += ["--num-gpus", str(request.num_gpus)]
        if request.resources:
            cmd += ["--resources", json.dumps(request.resources)]
        if request.object_store_memory is not None:
            cmd += ["--object-store-memory", str(int(request.object_store_memory))]
        env = dict(os.environ, RAYLITE_CLUSTER_TOKEN=self.token.hex())
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)

    def wait_ready(self) -> tuple[subprocess.Popen, str, bytes]:
        """(the daemon's process, its address, the cluster token) once it printed READY;
        RaySystemError (the daemon killed) when it printed ERROR, died or stayed silent for
        START_TIMEOUT_S."""
        address, _session_dir = read_ready(self.proc, self.temp_dir)
        return self.proc, address, self.token

    def abandon(self) -> None:
        """Kills the daemon (our own child, not yet reaped) and reaps it."""
        self.proc.kill()
        self.proc.wait()


def launch(cmd: list, env: dict, temp_dir: str) -> tuple[subprocess.Popen, str, str]:
    """Starts a node daemon (`cmd`) in a session of its own; returns it, its address and
    session dir once it printed READY (cluster_utils), else RaySystemError as read_ready."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    address, session_dir = read_ready(proc, temp_dir)
    return proc, address, session_dir


def read_ready(proc: subprocess.Popen, temp_dir: str) -> tuple[str, str]:
    """(address, session dir) from a starting daemon's READY line; RaySystemError (the daemon
    killed and reaped) when it printed ERROR, died or stayed silent for START_TIMEOUT_S."""
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline().decode() if ready else ""
    proc.stdout.close()
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        if line.startswith("ERROR "):
            raise RaySystemError(f"The raylite node daemon did not start: {line[6:].strip()}")
        raise RaySystemError(f"The raylite node daemon did not start (exit code "
                             f"{proc.returncode}); its error output is above. Check that the "
                             f"temp dir {temp_dir} is writable.")
    _, address, session_dir = line.split()
    return address, session_dir


def stop_head(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()



def join_token(address: str, temp_dir: str | None) -> bytes:
    """The token of the cluster at `address` (_session.token_for); ConnectionError naming
    the cause when there is none: nothing listens there, or no session of it is ours."""
    try:
        return token_for(address, temp_dir)
    except ConnectionError:
        why = _unreachable(address)
        if why is None:
            raise
        raise ConnectionError(
            f"Nothing listens at {address} ({why}): no raylite cluster runs there. Start one "
            "with `raylite start --head` (drivers join it at host:6380, or at ray://host:10001, "
            "Ray's client port), or check the address.") from None


def _unreachable(address: str) -> str | None:
    """Why a TCP connection to `address` fails, or None when something accepts it."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return None
    except OSError as e:
        return e.strerror or str(e) or type(e).__name__
