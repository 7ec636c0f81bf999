"""A cluster's session files on this machine, and finding its token there (a leaf module).

Every node daemon writes, in its session dir <temp>/session_<time>_<pid>:

    token       the cluster token (hex, mode 0600)
    node.json   {"address", "pid", "zygote_pid", "node_id"}, and for a head started with
                a Ray client port, "client_address" (or "client_error": why it has none)

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
