"""What the node daemon reports: memory summaries (`raylite memory`) and infeasibility
warnings (the cluster state is composed with the GCS's part in gcs_link.py). Mixed into
NodeServer: these handlers run under its lock and read its scheduler, store and clients.

    MemoryReport ─► ListObjects to every driver and worker ─► their ObjectLists, or 1 s
                 ─► MemorySummary(replies, store statistics, segments)
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from .. import _ids
from .._protocol import messages as m
from . import scheduler as sch
from .outbox import send as _send

log = logging.getLogger("raylite.node")


class Reports:
    _lock: Any
    _clients: dict
    _reports: dict
    sched: Any
    store: Any
    node_id: bytes

    def _on_memory_report(self, c: Any, msg: m.MemoryReport) -> None:
        clients = [x for x in self._clients.values() if x.kind in ("driver", "worker")]
        req = int.from_bytes(_ids.new_id()[-6:], "big")
        self._reports[req] = (c.conn, msg.req, len(clients), [])
        for x in clients:
            _send(x.conn, m.ListObjects(req))
        threading.Timer(1.0, self._finish_report, args=(req,)).start()
        if not clients:
            self._finish_report(req)

    def _on_object_list(self, c: Any, msg: m.ObjectList) -> None:
        entry = self._reports.get(msg.req)
        if entry is not None:
            entry[3].append(msg)
            if len(entry[3]) >= entry[2]:
                self._finish_report(msg.req)

    def _finish_report(self, req: int) -> None:
        with self._lock:
            entry = self._reports.pop(req, None)
            if entry is not None:
                conn, client_req, _, replies = entry
                _send(conn, m.MemorySummary(client_req, replies, self.store.statistics(),
                                            self.store.listing()))

    def _warn_infeasible(self, ins: sch.Infeasible) -> None:
        from .._runtime.resources import describe

        text = (f"{ins.name} needs {describe(ins.demand)} but no node in this cluster has that "
                f"much (this node: {describe(self.sched.total)}). It stays pending until a node "
                "that can run it joins; lower its demand or add resources.")
        log.warning(text)
        targets = [ins.owner] if ins.owner is not None else \
            [x.conn for x in self._clients.values() if x.kind == "driver"]
        for conn in targets:
            _send(conn, m.Warning(text))

    def statistics(self) -> dict:
        with self._lock:
            return {"node": self.sched.statistics(), "store": self.store.statistics()}
