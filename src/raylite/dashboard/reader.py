"""The dashboard's only window on the cluster: the state request, as `raylite status` asks it.

    Reader(address, token, session_dir)
      .state(kinds, owners) ─► connect (both ends prove the token) ─► GetState(req, kinds, owners)
                            ◄─ StateReply(req, snapshot, missing) ─► (StateSnapshot, missing)
      .log_dir()            ─► <session_dir>/logs (the files the logs page lists)

A new connection per request, as cli/status.py does: nothing is held open between page
views, so a daemon restart or a dropped socket costs one failed page, never a stuck
dashboard. The dashboard never reads a core's insides, only these frozen records
(_core/records.py). `owners=False` asks the daemon's cores only (quick); `owners=True`
also asks every driver and worker for the tasks and objects it owns (tasks in flight are
known only to their owners), and names those that did not answer in `missing`.
"""
from __future__ import annotations

import itertools
import os

REPLY_TIMEOUT_S = 10.0


class ClusterUnavailable(Exception):
    """The cluster did not answer: the page says so and the next request tries again."""


class Reader:
    def __init__(self, address: str, token: bytes, session_dir: str | None):
        self.address = address
        self._token = token
        self.session_dir = session_dir
        self._req = itertools.count(1)

    def state(self, kinds: tuple, owners: bool = False):
        """(StateSnapshot, missing owners) for `kinds`; ClusterUnavailable when no answer."""
        from raylite._protocol import messages as m
        from raylite._protocol.transport import connect

        try:
            conn = connect(self.address, self._token)
        except (ConnectionError, OSError, ValueError) as e:
            raise ClusterUnavailable(f"cannot reach the cluster at {self.address}: {e}") from None
        try:
            conn.sock.settimeout(REPLY_TIMEOUT_S)
            conn.send(m.GetState(next(self._req), tuple(kinds), owners))
            reply = conn.recv()
        except (EOFError, OSError) as e:
            raise ClusterUnavailable(f"the cluster at {self.address} did not answer: {e}") from None
        finally:
            conn.close()
        if not isinstance(reply, m.StateReply):
            raise ClusterUnavailable(f"the cluster at {self.address} answered {type(reply).__name__}"
                                     " to a state request")
        return reply.snapshot, tuple(reply.missing)

    def log_dir(self) -> str | None:
        """<session_dir>/logs, or None when the session dir is not known (a remote head)."""
        return os.path.join(self.session_dir, "logs") if self.session_dir else None


def resolve(address: str | None, temp: str) -> Reader:
    """A Reader for `address` (default: the head `raylite start` recorded in `temp`), with the
    token found as `raylite status` finds it. ClusterUnavailable says what to do when none."""
    from raylite.cli import _records as rec

    head = rec.live_head(temp)
    if address is None:
        if head is None:
            raise ClusterUnavailable(f"no running raylite cluster here (temp dir {temp}): start one "
                                     "with `raylite start --head`, or pass --address HOST:PORT.")
        address = head.address
    try:
        token = rec.find_token(address, temp)
    except (ConnectionError, ValueError) as e:
        raise ClusterUnavailable(str(e)) from None
    session = head.session_dir if head is not None and head.address == address else None
    return Reader(address, token, session)
