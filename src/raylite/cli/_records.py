"""What `raylite start` leaves on disk, and how to find its processes again, by pid only.

    <temp>/raylite_current_cluster   "address pid session_dir"   the head (written by its daemon)
    <temp>/raylite_nodes/<pid>       "address pid session_dir head"   each node that joined
                                                                      a head (at address head)
    <session_dir>/token              the cluster token (hex, mode 0600)
    <session_dir>/node.json          {"address", "pid", "zygote_pid", "node_id"}

The temp dir, the records and the session files are read only when they are this
user's alone (_private_files: owner, mode, no links); otherwise NotPrivateError names
the path, and the command prints it and exits 1 (cli/main.py).

Every daemon `start` launches leads its own session and process group
(start_new_session), and its zygote and workers stay in that group. So the
recorded pid names the whole tree: `stop` signals the group, and the tree is
gone when no live process is left in it. Zombies count as gone (they wait for
an init that may reap slowly). A recorded pid that now belongs to some other
program (the machine rebooted, the pid was reused) is never signalled.
"""
from __future__ import annotations

import os
import signal
from typing import NamedTuple

from raylite import _private_files as private

HEAD_RECORD = "raylite_current_cluster"
NODES_DIR = "raylite_nodes"
_DAEMON_MODULE = b"raylite._node.main"


class Record(NamedTuple):
    path: str          # the record file
    address: str       # host:port the daemon listens on
    pid: int           # the daemon, leader of its process group
    session_dir: str
    kind: str          # "head" | "node"


def temp_dir(cli_value: str | None) -> str:
    """--temp-dir, else $RAYLITE_TEMP_DIR, else /tmp/raylite_<uid>."""
    from raylite import _config

    return cli_value or os.environ.get("RAYLITE_TEMP_DIR") or _config.default_temp_dir()


def read(path: str, kind: str) -> Record | None:
    try:
        address, pid, session = (private.read_text(path) or "").split()[:3]
        return Record(path, address, int(pid), session, kind)
    except (OSError, ValueError):
        return None


def head(temp: str) -> Record | None:
    """The recorded head, alive or not."""
    if not private.check_dir(temp):
        return None
    return read(os.path.join(temp, HEAD_RECORD), "head")


def nodes(temp: str) -> list[Record]:
    """The recorded joined nodes, alive or not."""
    d = os.path.join(temp, NODES_DIR)
    names = sorted(os.listdir(d)) if private.check_dir(temp) and private.check_dir(d) else []
    recs = (read(os.path.join(d, name), "node") for name in names if not name.endswith(".tmp"))
    return [r for r in recs if r is not None]


def live_head(temp: str) -> Record | None:
    rec = head(temp)
    return rec if rec is not None and is_daemon(rec.pid) else None


def token(rec: Record) -> str:
    """The cluster token in the record's session dir ('' if it has none)."""
    if not private.check_dir(rec.session_dir):
        return ""
    return (private.read_text(os.path.join(rec.session_dir, "token"), secret=True) or "").strip()


# -- processes ----------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) from /proc; None when gone or unknowable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return fields[0].decode(), int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def _has_proc() -> bool:
    return os.path.isdir("/proc/self")


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    if _has_proc():
        st = _stat(pid)
        return st is not None and st[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_daemon(pid: int) -> bool:
    """Alive and really a raylite node daemon (not a stranger that got a recorded pid)."""
    if not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return _DAEMON_MODULE in f.read()
    except FileNotFoundError:
        return not _has_proc()  # no /proc (macOS): trust the record
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes in the process group `pgid` (the daemon, its zygote, its workers)."""
    if not _has_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[1] == pgid and st[0] not in ("Z", "X"):
                out.append(int(name))
    return out


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_pid(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def find_token(address: str, temp: str) -> bytes:
    """The token of the cluster at `address`: RAYLITE_CLUSTER_TOKEN, else this machine's session
    of it (also a head bound to every interface, named by one of this machine's addresses).
    ValueError for a bad RAYLITE_CLUSTER_TOKEN, ConnectionError when none is found."""
    from raylite._session import token_for

    try:
        return token_for(address, temp)
    except ConnectionError as e:
        head = live_head(temp)
        if head is not None and head.address.rpartition(":")[0] in ("0.0.0.0", "::") and \
                head.address.rpartition(":")[2] == address.rpartition(":")[2]:
            try:
                found = bytes.fromhex(token(head))
            except ValueError:
                found = b""
            if found:
                return found
        raise ConnectionError(f"{e} (temp dir {temp})") from None
