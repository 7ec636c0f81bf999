"""Starting a head on this machine for a driver.

    init() ─► start_head(): python -m raylite._node.main --owner-pid <driver pid>
              (token handed over in the environment, never on the command line)
           ◄─ "READY <address> <session dir>" (or "ERROR <why>") on the daemon's stdout

Joining a running cluster instead finds its token with _session.token_for.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from typing import Any

from .. import _config
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
    proc, address, _session_dir = launch(cmd, env, temp_dir)
    return proc, address, token


def launch(cmd: list, env: dict, temp_dir: str, **popen: Any) -> tuple[subprocess.Popen, str, str]:
    """Starts a node daemon (`cmd`) in a session of its own; returns it, its address and
    session dir once it printed READY, or RaySystemError with its ERROR line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True, **popen)
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
    _, address, session_dir = line.split()
    return proc, address, session_dir


def stop_head(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

