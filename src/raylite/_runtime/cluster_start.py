"""Starting a head on this machine for a driver, or finding the token to join one.

    init() ─► start_head(): python -m raylite._node.main --owner-pid <driver pid>
              (token handed over in the environment, never on the command line)
           ◄─ "READY <address> <session dir>" (or "ERROR <why>") on the daemon's stdout

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


def start_head(request) -> tuple[subprocess.Popen, str, bytes]:
    token = os.urandom(32)
    temp_dir = request.temp_dir or _config.default_temp_dir()
    cmd = [sys.executable, "-m", "raylite._node.main", "--owner-pid", str(os.getpid()),
           "--temp-dir", temp_dir]
    if request.num_cpus is not None:
        cmd += ["--num-cpus", str(request.num_cpus)]
    if request.num_gpus is not None:
        cmd += ["--num-gpus", str(request.num_gpus)]
    if request.resources:
        cmd += ["--resources", json.dumps(request.resources)]
    if request.object_store_memory is not None:
        cmd += ["--object-store-memory", str(int(request.object_store_memory))]
    env = dict(os.environ, RAYLITE_CLUSTER_TOKEN=token.hex())
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline().decode() if ready else ""
    proc.stdout.close()
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        if line.startswith("ERROR "):
            raise RaySystemError(f"The raylite node daemon did not start: {line[6:].strip()}")
        raise RaySystemError(f"The raylite node daemon did not start (exit code {proc.returncode}); "
                             "its error output is above. Check that the temp dir "
                             f"{temp_dir} is writable.")
    _, address, _session_dir = line.split()
    return proc, address, token


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
