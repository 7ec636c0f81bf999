"""`raylite stop [--force]`: stop what `raylite start` started on this machine, and clean
up after the daemons that died.

    records (joined nodes, then the head) ─► SIGTERM each daemon (--force: SIGKILL its group)
        ─► wait up to GRACE_S for every daemon to exit: a daemon that stops cleanly
           stops its own workers, frees its shm segments and removes its records
        ─► SIGKILL whatever is left in each daemon's process group (a hung daemon,
           a worker busy in a task, a task's own child), wait until none is alive
        ─► for a daemon that had to be killed, do its cleanup for it: its /dev/shm
           segments, its unix socket, its session dir but its logs; remove every record
        ─► sweep <temp>/session_<time>_<pid>: a session whose daemon is dead (no raylite
           daemon process left in the process group that pid led: killed -9 by someone
           else before this command, or a driver-started head whose driver died too)
           gets the same cleanup: the segments /dev/shm/raylite_<node id[:12]>_* its
           node.json names, its unix socket, its session dir but its logs. An ended
           session (only logs/ left: a daemon that stopped cleanly, or one cleaned up
           after: _session.py) stays, its logs readable, until the next head starts here.

The dashboard `start --head --dashboard-port` launched is stopped first, by the pid in
<temp>/raylite_dashboard, and only while that pid still runs raylite.dashboard.

Processes are found only through the recorded pids and session names (see _records),
never by name. Only what is ours is touched: sessions and node.json pass
_private_files, a segment is unlinked only if we own it.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import signal
import time

from raylite import _private_files as private
from raylite._session import end, is_ended

from . import _records as rec

GRACE_S = 5.0
KILL_WAIT_S = 5.0


def _gone(r: rec.Record) -> bool:
    return not rec.alive(r.pid) and not rec.group_members(r.pid)


def _wait(records: list, timeout: float, done) -> list:
    """The records still not `done` after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = [r for r in records if not done(r)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [r for r in left if not done(r)]
    return left


def stop_records(records: list, force: bool, grace: float = GRACE_S) -> tuple[list, list, list]:
    """Stops the daemons behind `records`: (stopped cleanly, killed, could not kill)."""
    for r in records:
        if force:
            rec.signal_group(r.pid, signal.SIGKILL)
            rec.signal_pid(r.pid, signal.SIGKILL)
        else:
            rec.signal_pid(r.pid, signal.SIGTERM)
    hung = records if force else _wait(records, grace, lambda r: not rec.alive(r.pid))
    for r in records:  # leftovers of clean exits too: a task's own children stay in the group
        rec.signal_group(r.pid, signal.SIGKILL)
        if r in hung:
            rec.signal_pid(r.pid, signal.SIGKILL)
    failed = _wait(records, KILL_WAIT_S, _gone)
    for r in hung:
        if r not in failed:
            _clean_up_after(r)
    clean = [r for r in records if r not in hung and r not in failed]
    return clean, [r for r in hung if r not in failed], failed


def _clean_up_after(r: rec.Record) -> None:
    """What a killed daemon could not do: free its segments, socket and session dir."""
    session = os.path.realpath(r.session_dir)
    temp = os.path.realpath(os.path.dirname(os.path.dirname(r.path)) if r.kind == "node"
                            else os.path.dirname(r.path))
    if os.path.basename(session).startswith("session_") and os.path.dirname(session) == temp:
        try:
            clean_session(session)
        except private.NotPrivateError as e:
            print(f"left {session} alone: {e}")


def clean_session(session: str) -> int:
    """Removes what the dead daemon of `session` left: the segments its node.json names, its
    unix socket, the session dir but its logs (kept as a clean stop keeps them, until the
    next head starts: _session.end). Returns how many segments it removed. NotPrivateError
    (nothing removed) if the session dir or its node.json is not ours alone."""
    if not private.check_dir(session):
        return 0
    try:
        info = json.loads(private.read_text(os.path.join(session, "node.json")) or "{}")
    except ValueError:
        info = {}
    info = info if isinstance(info, dict) else {}
    node_id = info.get("node_id")
    removed = 0
    if isinstance(node_id, str) and re.fullmatch("[0-9a-f]{32}", node_id):  # it makes a glob
        from raylite._object_store import shm

        removed = shm.remove_node_segments(node_id[:12])
    if isinstance(info.get("address"), str):
        _unlink_stale_socket(info["address"])
    end(session)
    return removed


def _session_pid(session: str) -> int | None:
    """The daemon pid in a session dir's name (session_<date>_<time>_<pid>)."""
    tail = os.path.basename(session).rpartition("_")[2]
    return int(tail) if tail.isdigit() else None


def _daemon_left(pid: int) -> bool:
    """Is the daemon `pid`, or a process of the group it led (its zygote, a worker), alive?"""
    return rec.is_daemon(pid) or any(rec.is_daemon(p) for p in rec.group_members(pid))


def sweep(temp: str) -> list[tuple[str, int, int]]:
    """Cleans up after every dead daemon's session in `temp`: [(session, pid, segments)]."""
    done = []
    if not private.check_dir(temp):
        return done
    for session in sorted(glob.glob(os.path.join(glob.escape(temp), "session_*"))):
        pid = _session_pid(session)
        if pid is None or is_ended(session) or _daemon_left(pid):
            continue  # ended: a cluster that stopped cleanly; its logs stay (_session.py)
        try:
            done.append((session, pid, clean_session(session)))
        except private.NotPrivateError as e:
            print(f"left {session} alone: {e}")
    return done


def _unlink_stale_socket(address: str) -> None:
    """The daemon's unix socket, unless a newer listener already took that address."""
    import socket

    from raylite._protocol.transport import unix_path

    path = unix_path(address)
    if path.startswith("\0"):
        return  # abstract namespace (Linux): nothing on disk to remove
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(path)
    except FileNotFoundError:
        return
    except OSError:
        _unlink(path)  # nobody listens: stale
    finally:
        s.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def stop_dashboard(temp: str, force: bool = False) -> str | None:
    """Stops the recorded dashboard (SIGTERM, then SIGKILL after GRACE_S); what was done."""
    from raylite.dashboard import record as dash

    r = dash.read(temp)
    if r is None:
        return None
    if not dash.is_dashboard(r.pid):
        _unlink(r.path)
        return f"removed the record of the dashboard {r.url} (pid {r.pid} is no longer one)"
    rec.signal_pid(r.pid, signal.SIGKILL if force else signal.SIGTERM)
    if _wait([r], GRACE_S, lambda x: not dash.is_dashboard(x.pid)):
        rec.signal_pid(r.pid, signal.SIGKILL)
        _wait([r], KILL_WAIT_S, lambda x: not dash.is_dashboard(x.pid))
    _unlink(r.path)
    return f"stopped the dashboard {r.url} (pid {r.pid})"


def run(args: argparse.Namespace) -> int:
    temp = rec.temp_dir(args.temp_dir)
    said = stop_dashboard(temp, args.force) if private.check_dir(temp) else None
    if said:
        print(said)
    recorded = rec.nodes(temp) + [r for r in [rec.head(temp)] if r is not None]
    running, stale = [], []
    for r in recorded:
        (running if rec.is_daemon(r.pid) or rec.group_members(r.pid) and not rec.alive(r.pid)
         else stale).append(r)
    clean, killed, failed = stop_records(running, args.force)
    for r in clean:
        print(f"stopped {r.kind} {r.address} (pid {r.pid})")
    for r in killed:
        why = "--force" if args.force else f"it did not exit within {GRACE_S:g} s of SIGTERM"
        print(f"killed {r.kind} {r.address} (pid {r.pid}; {why})")
    for r in failed:
        print(f"could not stop {r.kind} {r.address} (pid {r.pid}): processes of its group "
              f"are still alive; see `ps -g {r.pid}`")
    for r in stale:
        print(f"removed the record of {r.kind} {r.address} (pid {r.pid} is no longer a raylite "
              "daemon)")
    for r in recorded:
        if r not in failed:
            _unlink(r.path)
    for session, pid, segments in sweep(temp):
        print(f"cleaned up after the dead daemon {pid}: removed {segments} shared-memory "
              f"segment{'s' if segments != 1 else ''} and its session dir {session}")
    if not running:
        print(f"no running raylite cluster was started here (temp dir {temp})")
    return 1 if failed else 0
