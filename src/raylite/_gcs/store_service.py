"""The GCS service's handlers for what it keeps on behalf of its clients (mixed into
GcsService; run under its lock): the KV store (in GcsTables, written through to storage),
user metrics (the pure MetricsTable, metrics.py) and task events (the pure TaskEventTable,
_core/task_events.py: bounded per job, filtered where the rows are).

    KvGet / KvPut / KvDelete / KvKeys ─► tables ─► KvReply
    ReportMetrics (one-way) ─► metrics.report;   GetMetrics ─► MetricsReply
    TaskEvents (one-way, with who sent them) ─► task_events.add_whole, add
    GetTaskEvents(filters, limit, offset, summary) ─► TaskEventsReply(records, total, dropped)
"""
from __future__ import annotations

from typing import Any

from .._protocol import messages as m

_Node = Any  # service._Node: a registered node's link


class StoreHandlers:
    tables: Any
    ep: Any
    metrics: Any
    task_events: Any

    # -- task events (_core/task_events.py) ------------------------------------------
    def _on_task_events(self, node: _Node, msg: m.TaskEvents) -> None:
        if msg.whole:  # first: the batch's later events of these attempts find their rows
            self.task_events.add_whole(msg.whole, msg.address)
        for owner, whole in msg.runs:  # a worker's, of its owners' tasks
            self.task_events.add_whole(whole, owner)
        self.task_events.add(msg.events, msg.address, node.node_id.hex(),
                             msg.worker_id.hex() if msg.worker_id else None, msg.pid or None,
                             msg.lost)

    def _on_get_task_events(self, node: _Node, msg: m.GetTaskEvents) -> None:
        """Task records, filtered here, where they live, before the limit and offset."""
        self.ep.reply(node.conn, msg, m.TaskEventsReply(msg.req, *self.task_events.answer(
            msg.filters, msg.limit, msg.offset, msg.summary)))

    # -- KV --------------------------------------------------------------------------
    def _on_kv_get(self, node: _Node, msg: m.KvGet) -> None:
        value = self.tables.kv_get(msg.key)
        self.ep.reply(node.conn, msg, m.KvReply(msg.req, value is not None, value))

    def _on_kv_put(self, node: _Node, msg: m.KvPut) -> None:
        ok = self.tables.kv_put(msg.key, msg.value, msg.overwrite)
        self.ep.reply(node.conn, msg, m.KvReply(msg.req, ok))

    def _on_kv_delete(self, node: _Node, msg: m.KvDelete) -> None:
        self.ep.reply(node.conn, msg, m.KvReply(msg.req, self.tables.kv_delete(msg.key)))

    def _on_kv_keys(self, node: _Node, msg: m.KvKeys) -> None:
        keys = tuple(self.tables.kv_keys(msg.prefix))
        self.ep.reply(node.conn, msg, m.KvReply(msg.req, True, None, keys))

    # -- metrics (metrics.py) ---------------------------------------------------------
    def _on_report_metrics(self, node: _Node, msg: m.ReportMetrics) -> None:
        self.metrics.report(msg.series, msg.dropped)

    def _on_get_metrics(self, node: _Node, msg: m.GetMetrics) -> None:
        reply = m.MetricsReply(msg.req, self.metrics.snapshot(), self.metrics.dropped)
        self.ep.reply(node.conn, msg, reply)
