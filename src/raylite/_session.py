"""A cluster's session files on this machine, and finding its token there (a leaf module).

Every node daemon writes, in its session dir <temp>/session_<time>_<pid>:

    token       the cluster token (hex, mode 0600)
    node.json   {"address", "pid", "zygote_pid", "node_id"}, and for a head started with
                a Ray client port, "client_address" (or "client_error": why it has none)
    logs/       workers' output (worker-<id>-<pid>.out/.err), submitted jobs' output

A daemon that stops cleanly ends its session (end()): everything goes but logs/, kept
when it holds a file, so the logs of a stopped cluster stay readable (`raylite logs`,
util.state.get_log); a session that is only logs/ is "ended". The next head started
with this temp dir removes the ended sessions (remove_ended), as does deleting them.

    token_for(address, temp): RAYLITE_CLUSTER_TOKEN if set, else the token beside the
              node.json that names `address` (as its address or its client address); the
              temp dir, session dirs and files must be this user's alone (_private_files),
              else NotPrivateError names the path.

The driver (joining a cluster), a joining node daemon and the CLI read it; none
of them needs the others' code for that.
"""
from __future__ import annotations

import glob
import json
import os

from . import _config
from . import _private_files as private


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
    temp_dir = temp_dir or _config.default_temp_dir()
    sessions = glob.glob(os.path.join(glob.escape(temp_dir), "session_*")) \
        if private.check_dir(temp_dir) else []
    for session in sessions:
        if not private.check_dir(session):
            continue  # removed since the listing
        try:
            node = json.loads(private.read_text(os.path.join(session, "node.json")) or "{}")
            if address not in (node.get("address"), node.get("client_address")):
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


def end(session_dir: str) -> None:
    """A clean stop: removes the session dir, except logs/ when it holds a file."""
    import shutil

    logs = os.path.join(session_dir, "logs")
    try:
        keep = private.check_dir(logs) and bool(os.listdir(logs))
    except OSError:
        keep = False
    if not keep:
        shutil.rmtree(session_dir, ignore_errors=True)
        return
    try:
        names = os.listdir(session_dir)
    except OSError:
        return
    for name in names:
        if name != "logs":
            path = os.path.join(session_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def is_ended(session_dir: str) -> bool:
    """Only logs/ is left: its daemon stopped cleanly (end())."""
    try:
        return os.listdir(session_dir) == ["logs"]
    except OSError:
        return False


def ended_sessions(temp_dir: str) -> list[str]:
    """The ended sessions in `temp_dir` (ours alone), newest first."""
    if not private.check_dir(temp_dir):
        return []
    found = [s for s in glob.glob(os.path.join(glob.escape(temp_dir), "session_*"))
             if is_ended(s) and private.check_dir(s)]
    return sorted(found, key=os.path.getmtime, reverse=True)


def remove_ended(temp_dir: str) -> None:
    """Removes the logs of the clusters that stopped before (a head's start)."""
    import shutil

    for session in ended_sessions(temp_dir):
        shutil.rmtree(session, ignore_errors=True)
