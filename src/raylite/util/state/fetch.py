"""Where a state call gets its records: this process's runtime, or a cluster by address.

    address given ─────────────────────────► connect(address, token) ─► GetState ─► StateReply
    no address, init() in this process:                                  (snapshot, missing)
        local mode ─► runtime.state()    (everything is in this process: nothing is missing)
        ray runtime ─► runtime.state()   (Ray's GCS tables; what needs Ray's state API is
                                          refused by the calls: on_ray.py)
        cluster    ─► connect(its daemon, its token) ─► GetState ─► StateReply
    no address, no init() ─► $RAYLITE_ADDRESS, else the head `raylite start` recorded here

Every ask opens one connection to a node daemon and closes it before returning, so a call
leaves nothing behind (as `raylite status` does), and the reply carries the names of the
owners that did not answer in time (`missing`), which the state API reports. The process's
own runtime, if any, answers the daemon's owner request on its own I/O thread meanwhile.

Tasks come from elsewhere: the GCS's task-event store, asked with GetTaskEvents (filters,
limit and offset applied there, so only what is shown travels). No owner is asked. A driver
asking about its own cluster sends its pending task events first, on the connection the
question then takes, so its own finished tasks are listed (ask_tasks).
"""
from __future__ import annotations

import os
from typing import NamedTuple

from .common import RayStateApiException

DEFAULT_TIMEOUT_S = 30.0


class Target(NamedTuple):
    address: str | None        # a node daemon's host:port; None: the local-mode runtime
    token: bytes
    session_dir: str | None    # where this cluster's session files (and logs/) are, if known
    temp_dir: str | None       # where its daemon logs (raylite_head.log, ...) are, if known
    mode: str = ""             # "ray": the ray runtime answers itself (on_ray.py says what)


def resolve(address: str | None = None, temp_dir: str | None = None) -> Target:
    """The cluster to ask. RayStateApiException when none is found."""
    from raylite import _runtime

    rt = _runtime.current() if address is None else None
    if rt is not None:
        info = rt.info()
        if info.mode == "local":
            return Target(None, b"", None, None)
        if info.mode == "ray":  # Ray's GCS through the runtime, or a clear refusal (on_ray.py)
            return Target(None, b"", info.session_dir, None, "ray")
        token = getattr(rt, "_token", None) or _token(info.address, temp_dir)
        session = info.session_dir
        return Target(info.address, token, session, os.path.dirname(session) if session else None)
    from raylite.cli import _records as rec

    temp = rec.temp_dir(temp_dir)
    address = address or os.environ.get("RAYLITE_ADDRESS") or None
    if address in (None, "auto"):
        head = rec.live_head(temp)
        if head is None:
            raise RayStateApiException(
                f"no running raylite cluster here (temp dir {temp}) and no init() in this "
                "process: start one with `raylite start --head`, call raylite.init(), or pass "
                "address='HOST:PORT'.")
        return Target(head.address, _token(head.address, temp), head.session_dir, temp)
    session = _session_of(address, temp)
    return Target(address, _token(address, temp), session, temp if session else None)


def _token(address: str, temp: str | None) -> bytes:
    from raylite.cli import _records as rec

    try:
        return rec.find_token(address, rec.temp_dir(temp))
    except (ConnectionError, ValueError) as e:
        raise RayStateApiException(f"cannot ask the cluster at {address}: {e}") from None


def _session_of(address: str, temp: str) -> str | None:
    from raylite.cli import _records as rec

    for r in [rec.head(temp), *rec.nodes(temp)]:
        if r is not None and r.address == address:
            return r.session_dir
    return None


def ask(target: Target, kinds: tuple, owners: bool, timeout: float | None):
    """(snapshot, missing) of `kinds` from the target; with `owners`, every driver and worker
    is asked for its tasks and objects."""
    if target.address is None:
        from raylite import _runtime

        rt = _runtime.current()
        if rt is None:
            raise RayStateApiException("raylite was shut down while asking for its state")
        return rt.state(), ()
    from raylite._protocol import messages as m

    reply = _ask_once(target, m.GetState(1, tuple(kinds), owners), timeout)
    return reply.snapshot, tuple(reply.missing)


def ask_tasks(target: Target, filters: list, limit: int | None, offset: int, summary: bool,
              timeout: float | None):
    """The GCS's answer (a TaskEventsReply) to GetTaskEvents: task records that pass
    `filters`, at most `limit` from the `offset`-th, or with `summary` counts by function."""
    from raylite import _runtime
    from raylite._protocol import messages as m

    for key, _, value in filters:
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise RayStateApiException(f"the value of the filter on {key!r} must be a string or a "
                                       f"number, not {type(value).__name__}")
    msg = m.GetTaskEvents(1, tuple((k, p, v) for k, p, v in filters),
                          -1 if limit is None else limit, offset, summary)
    rt = _runtime.current()
    if target.address is None or (rt is not None and rt.info().address == target.address):
        if rt is None:
            raise RayStateApiException("raylite was shut down while asking for its state")
        try:
            return rt.task_events(msg, DEFAULT_TIMEOUT_S if timeout is None else timeout)
        except Exception as e:  # the cluster went away or did not answer
            raise RayStateApiException(f"cannot ask for task records: {e}") from None
    return _ask_once(target, msg, timeout)


def ask_metrics(target: Target, timeout: float | None) -> tuple[tuple, int]:
    """(series, dropped): the user metrics (raylite.util.metrics) the cluster's GCS holds; in
    local mode this process's own."""
    if target.address is None:
        from raylite._runtime.metrics import pending

        return pending().snapshot(), pending().dropped
    from raylite._protocol import messages as m

    reply = _ask_once(target, m.GetMetrics(1), timeout)
    return tuple(reply.series), reply.dropped


def _ask_once(target: Target, msg, timeout: float | None):
    from raylite._protocol.transport import connect

    try:
        conn = connect(target.address, target.token)
    except (ConnectionError, OSError, ValueError) as e:
        raise RayStateApiException(f"cannot connect to the cluster at {target.address}: {e}; "
                                   "is it running (`raylite status`)?") from None
    try:
        conn.sock.settimeout(DEFAULT_TIMEOUT_S if timeout is None else timeout)
        conn.send(msg)
        return conn.recv()
    except (EOFError, OSError) as e:
        raise RayStateApiException(f"the cluster at {target.address} did not answer within "
                                   f"{timeout}s: {e}") from None
    finally:
        conn.close()
