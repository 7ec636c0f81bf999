"""Starting a head on this machine for a driver, and finding a cluster's token.

    init() ─► start_head(): python -m raylite._node.main --owner-pid <driver pid>
              (token handed over in the environment, never on the command line)
           ◄─ "READY <address> <session dir>" (or "ERROR <why>") on the daemon's stdout

    token_for(address, temp): <temp>/session_*/node.json names the address, the token
              beside it is the cluster's; the temp dir, session dirs and files must be
              this user's alone (_private_files), else NotPrivateError names the path.
"""
from __future__ import annotations

import glob
import json
import os
import select
import subprocess
import sys

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


def token_for(address: str, temp_dir: str | None) -> bytes:
    """The token of the cluster at `address`: RAYLITE_CLUSTER_TOKEN, or this machine's session
    files. NotPrivateError if the temp dir or a session in it is not this user's alone."""
    env = os.environ.get("RAYLITE_CLUSTER_TOKEN")
    if env:
        try:
            return bytes.fromhex(env)
        except ValueError:
            raise ValueError("RAYLITE_CLUSTER_TOKEN must be the hex token printed by "
                             "`raylite start --head`.") from None
    from .. import _private_files as private

    temp_dir = temp_dir or _config.default_temp_dir()
    sessions = glob.glob(os.path.join(glob.escape(temp_dir), "session_*")) \
        if private.check_dir(temp_dir) else []
    for session in sessions:
        if not private.check_dir(session):
            continue  # removed since the listing
        try:
            if json.loads(private.read_text(os.path.join(session, "node.json")) or "{}") \
                    .get("address") != address:
                continue
            token = bytes.fromhex(private.read_text(os.path.join(session, "token"), secret=True)
                                  or "")
        except (OSError, ValueError, AttributeError):
            continue
        if token:
            return token
    raise ConnectionError(f"No token for the raylite cluster at {address}: no session on this "
                          "machine has that address. On another machine, set RAYLITE_CLUSTER_TOKEN "
                          "to the token `raylite start --head` printed.")
