"""What the node daemon reports: its state as frozen records (`raylite status`, `raylite
memory`, nodes(), resources, the runtimes' state()) and infeasibility warnings. Mixed into
NodeServer: these handlers run under its lock and read its cores and clients.

    GetState(kinds, owners) ─► nodes, jobs or actors asked? ─► GetState to the GCS (on the
         link, gcs_link.py; the head's answers at once, in this thread)
                            ─► tasks or objects asked, and owners? ─► GetState to every
         connected driver and worker ─► their StateReplies (shape-checked), or OWNER_WAIT_S
    ─► this node's cores, each state(): scheduler, worker table, store; the GCS's records
    ─► StateReply(merged snapshot, the owners (and the GCS) that did not answer)

The state API, the CLI and the dashboard read tasks from the GCS's task-event store
(GetTaskEvents, forwarded by gcs_link.py) instead: no owner is asked for them and no
OWNER_WAIT_S applies. A GetState for tasks still gets each owner's own view of its tasks in
flight (the runtimes' state()).

Merging (records.py): a node's record is the GCS's with its scheduler's overlaid (what is
free, and the store's spilling: spill_progress.py); a worker's the scheduler's with the worker table's overlaid (its pid; STARTING and
DEAD are the table's to say); an object its owner's with the store's overlaid (shared
memory or spilled). Owners answer for tasks and objects only. Only the kinds asked for
are built: nodes() asks for nodes alone and costs no object records.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from .. import _ids
from .._core.records import KINDS, StateSnapshot, located, merge, overlay
from .._protocol import messages as m
from . import scheduler as sch
from .outbox import send as _send

log = logging.getLogger("raylite.node")

OWNER_WAIT_S = 1.0      # how long a state request waits for the owners' (and GCS's) answers
_OWNED = ("tasks", "objects")
_GCS_KINDS = ("nodes", "jobs", "actors", "placement_groups")
_EMPTY = StateSnapshot("")


class _Gather:
    """A state request waiting for owners' answers."""
    __slots__ = ("conn", "req", "kinds", "waiting", "replies", "timer", "gcs", "gcs_pending")

    def __init__(self, conn: Any, req: int, kinds: tuple, waiting: dict):
        self.conn, self.req, self.kinds = conn, req, kinds
        self.waiting = waiting          # connection -> address, until it answers
        self.replies: list = []
        self.timer: Any = None
        self.gcs = _EMPTY               # the GCS's records, once it answered
        self.gcs_pending = False


class Reports:
    _lock: Any
    _clients: dict
    _reports: dict
    gcs_ep: Any
    gcs_conn: Any
    sched: Any
    procs: Any
    store: Any
    spill_progress: Any
    node_id: bytes

    def _on_get_state(self, c: Any, msg: m.GetState) -> None:
        owners = {}
        if msg.owners and any(k in msg.kinds for k in _OWNED):
            owners = {x.conn: x.address for x in self._clients.values()
                      if x.kind in ("driver", "worker")}
        rid = int.from_bytes(_ids.new_id()[-6:], "big")
        g = self._reports[rid] = _Gather(c.conn, msg.req, msg.kinds, owners)
        gcs_kinds = tuple(k for k in msg.kinds if k in _GCS_KINDS)
        if gcs_kinds and self.gcs_conn is not None:
            g.gcs_pending = True
            self.gcs_ep.call(self.gcs_conn, m.GetState(0, gcs_kinds, False)).add_done_callback(
                lambda call: self._gcs_state(rid, call))
        ask = m.GetState(rid, tuple(k for k in msg.kinds if k in _OWNED), False)
        for conn in owners:
            _send(conn, ask)
        if g.waiting or g.gcs_pending:
            g.timer = threading.Timer(OWNER_WAIT_S, self._finish_state, args=(rid,))
            g.timer.daemon = True
            g.timer.start()
        self._maybe_finish(rid)

    def _gcs_state(self, rid: int, call: Any) -> None:
        g = self._reports.get(rid)
        if g is None:
            return  # answered without it: too late
        g.gcs_pending = False
        if call.error is None:
            g.gcs = call.value.snapshot
        self._maybe_finish(rid)

    def _on_state_reply(self, c: Any, msg: m.StateReply) -> None:
        g = self._reports.get(msg.req)
        if g is None or g.waiting.pop(c.conn, None) is None:
            return  # late, or not asked
        g.replies.append(msg.snapshot)
        self._maybe_finish(msg.req)

    def _maybe_finish(self, rid: int) -> None:
        g = self._reports.get(rid)
        if g is not None and not g.waiting and not g.gcs_pending:
            if g.timer is not None:
                g.timer.cancel()
            self._finish_state(rid)

    def _finish_state(self, rid: int) -> None:
        with self._lock:
            g = self._reports.pop(rid, None)
            if g is not None:
                missing = tuple(g.waiting.values()) + (("the GCS",) if g.gcs_pending else ())
                _send(g.conn, m.StateReply(g.req, self._node_state(g.kinds, g.replies, g.gcs),
                                           missing))

    def _node_state(self, kinds: tuple, replies: list, gcs: StateSnapshot = _EMPTY) -> StateSnapshot:
        """This node's cores' records of `kinds`, merged with the GCS's records (nodes, jobs,
        actors) and the owners' `replies`."""
        want = set(kinds)
        me = self.node_id.hex()
        sched = self.sched.state(me, {x.conn: x.address for x in self._clients.values()}) \
            if want & {"nodes", "workers", "leases"} else _EMPTY
        procs = self.procs.state(me) if "workers" in want else _EMPTY
        stored = self.store.state().objects if "objects" in want else ()
        owned = merge(replies)
        if sched.nodes:  # the store's spilling, on this node's record
            sched = sched._replace(nodes=tuple(n._replace(spill=self.spill_progress.record())
                                               for n in sched.nodes))
        snap = StateSnapshot(f"node {me}", overlay(gcs.nodes, sched.nodes), gcs.jobs,
                             overlay(sched.workers, procs.workers), sched.leases, gcs.actors,
                             owned.tasks, located(owned.objects, stored), gcs.placement_groups)
        return snap._replace(**{k: () for k in KINDS if k not in want})

    def _warn_infeasible(self, ins: sch.Infeasible) -> None:
        from .._resources import describe

        text = (f"{ins.name} needs {describe(ins.demand)} but no node in this cluster has that "
                f"much (this node: {describe(self.sched.total)}). It stays pending until a node "
                "that can run it joins; lower its demand or add resources.")
        log.warning(text)
        targets = [ins.owner] if ins.owner is not None else \
            [x.conn for x in self._clients.values() if x.kind == "driver"]
        for conn in targets:
            _send(conn, m.Warning(text))
