"""Starting a head on this machine for a driver, and finding a cluster's token.

    init() ─► start_head(): python -m raylite._node.main --owner-pid <driver pid>
              (token handed over in the environment, never on the command line)
           ◄─ "READY <address> <session dir>" on the daemon's stdout
"""
from __future__ import annotations

import glob
import json
import os
import select
import subprocess
import sys

from ..exceptions import RaySystemError

START_TIMEOUT_S = 30.0


def start_head(request) -> tuple[subprocess.Popen, str, bytes]:
    token = os.urandom(32)
    cmd = [sys.executable, "-m", "raylite._node.main", "--owner-pid", str(os.getpid()),
           "--temp-dir", request.temp_dir]
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
        raise RaySystemError(f"The raylite node daemon did not start (exit code {proc.returncode}); "
                             "its error output is above. Check that the temp dir "
                             f"{request.temp_dir} is writable.")
    _, address, _session_dir = line.split()
    return proc, address, token


def stop_head(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def token_for(address: str, temp_dir: str) -> bytes:
    """The token of the cluster at `address`: RAYLITE_CLUSTER_TOKEN, or this machine's session files."""
    env = os.environ.get("RAYLITE_CLUSTER_TOKEN")
    if env:
        try:
            return bytes.fromhex(env)
        except ValueError:
            raise ValueError("RAYLITE_CLUSTER_TOKEN must be the hex token printed by "
                             "`raylite start --head`.") from None
    for node_file in glob.glob(os.path.join(temp_dir, "session_*", "node.json")):
        try:
            with open(node_file) as f:
                if json.load(f)["address"] != address:
                    continue
            with open(os.path.join(os.path.dirname(node_file), "token")) as f:
                return bytes.fromhex(f.read().strip())
        except (OSError, ValueError, KeyError):
            continue
    raise ConnectionError(f"No token for the raylite cluster at {address}: no session on this "
                          "machine has that address. On another machine, set RAYLITE_CLUSTER_TOKEN "
                          "to the token `raylite start --head` printed.")
