"""What a driver or worker reports besides tasks: metrics, progress bars, worker output.

    maintenance thread (cluster_tasks._maintain), every tick:
        pending metrics (metrics.py), every REPORT_S ─► ReportMetrics ─► node daemon ─► GCS
        a worker's bars due (progress.Outgoing)     ─► ProgressUpdate ─► node daemon ─► driver
    driver, from its daemon: LogLines ─► progress.display().write (printed between bars)
                             ProgressUpdate ─► progress.display().update (drawn)
    a worker's task or actor call ending (task_ended, before its reply): what it recorded
    a driver's shutdown: the last metrics sent before the connection closes, and up to
        progress.CLOSE_WAIT_S for workers' bars still open

Nothing here has a thread of its own: the maintenance thread each process already runs
does the sending, and a tick with nothing pending costs two attribute reads.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from .._protocol import messages as m
from . import metrics, progress


class Reports:
    """Methods of ClusterRuntime that report metrics and progress and print worker output."""

    _metrics_sent = 0.0
    _outgoing: progress.Outgoing | None = None

    def _report(self, now: float, force: bool = False) -> None:
        pending = metrics.pending_if_any()
        if pending and (force or now - self._metrics_sent >= metrics.REPORT_S):
            self._metrics_sent = now
            series, dropped = pending.drain()
            if series or dropped:
                self._send_report(m.ReportMetrics(series, dropped))
        if self._outgoing is not None:
            self._send_bars(now, force)

    def _send_bars(self, now: float, force: bool = False) -> None:
        job = self.executor.job_id if self.executor is not None else self.job_id
        if job:
            self._outgoing.send_due(now, lambda s: self._send_report(m.ProgressUpdate(job, *s)),
                                    force)

    def _send_report(self, msg: Any) -> None:
        try:
            self.send_daemon(msg)
        except OSError:
            pass  # the daemon is gone: so is the cluster these values were for

    def task_ended(self) -> None:
        """A worker's task or actor call ended: what it recorded goes now, before its reply
        (the worker may be killed once its owner has the reply)."""
        if metrics.has_pending() or self._outgoing is not None:
            self._report(time.monotonic(), force=True)

    def flush_reports(self) -> None:
        """A driver's shutdown: what is pending goes now; workers' bars still open get a
        moment to send their last states (progress.CLOSE_WAIT_S)."""
        self._report(time.monotonic(), force=True)
        shown = progress.display_if_any()
        if shown is not None and self.executor is None:
            shown.wait_closed(progress.CLOSE_WAIT_S)

    def progress(self, state: progress.BarState) -> None:
        if self.executor is None:  # a driver draws its own bars
            progress.display().update(state)
            return
        if self._outgoing is None:
            self._outgoing = progress.Outgoing()
        self._outgoing.put(state)
        if state.closed:
            self._send_bars(time.monotonic())

    def _on_progress_update(self, conn: Any, msg: m.ProgressUpdate) -> None:
        if self.log_to_driver:
            progress.display().update(progress.BarState(*msg[1:]), source=msg.job_id)

    def _on_log_lines(self, conn: Any, msg: m.LogLines) -> None:
        if self.log_to_driver:
            out = sys.stderr if msg.stderr else sys.stdout
            progress.display().write(out, "".join(f"{msg.prefix} {line}\n" for line in msg.lines))
