"""The dashboard's only window on the cluster: the state API's fetch layer
(raylite.util.state.fetch), the same state request `raylite list` and `raylite status` make.

    resolve(address, temp) ─► util.state.fetch.resolve ─► Target(address, token, session dir)
    Reader.state(kinds, owners) ─► util.state.fetch.ask ─► GetState(kinds, owners)
                                ◄─ (StateSnapshot of frozen records, missing owners)
    Reader.metrics()            ─► util.state.fetch.ask_metrics ─► GetMetrics ─► (series, dropped)
    Reader.tasks(filters, limit, offset) ─► util.state.fetch.ask_tasks ─► GetTaskEvents
                                ◄─ one page of the GCS's task records, and how many matched
    Reader.task_summary()       ─► GetTaskEvents(summary) ─► counts by function, type and state
    Reader.log_dir()            ─► <session_dir>/logs (the files the logs page lists)

A new connection per request, as the state API makes: nothing is held open between page
views, so a daemon restart or a dropped socket costs one failed page, never a stuck
dashboard. The pages work on the frozen records (_core/records.py) rather than the state
API's list_* rows because a page needs every match (its count, and page N of it) before
it shows 50, and list_* stops at its limit. `owners=False` asks the daemon's cores only
(quick); `owners=True` also asks every driver and worker for the objects it owns, naming those
that did not answer. Tasks come from the GCS's task-event store, which filters and pages them
itself (Reader.tasks): only the page shown travels.
"""
from __future__ import annotations

import os

REPLY_TIMEOUT_S = 10.0


class ClusterUnavailable(Exception):
    """The cluster did not answer: the page says so and the next request tries again."""


class Reader:
    def __init__(self, target):
        self.target = target  # the state API's Target (task_logs reads a task's lines with it)
        self.address = target.address
        self.session_dir = target.session_dir
        self.token = target.token  # the cluster token: the login form compares with it

    def state(self, kinds: tuple, owners: bool = False):
        """(StateSnapshot, missing owners) for `kinds`; ClusterUnavailable when no answer."""
        from raylite.util.state import RayStateApiException
        from raylite.util.state.fetch import ask

        try:
            return ask(self.target, tuple(kinds), owners, REPLY_TIMEOUT_S)
        except RayStateApiException as e:
            raise ClusterUnavailable(str(e)) from None

    def metrics(self) -> tuple[tuple, int]:
        """(series, dropped): the user metrics the GCS holds; ClusterUnavailable when no answer."""
        from raylite.util.state import RayStateApiException
        from raylite.util.state.fetch import ask_metrics

        try:
            return ask_metrics(self.target, REPLY_TIMEOUT_S)
        except RayStateApiException as e:
            raise ClusterUnavailable(str(e)) from None

    def tasks(self, filters: list, limit: int, offset: int):
        """A page of the task-event store's records (a TaskEventsReply: records, total,
        dropped), filtered, limited and offset in the GCS; ClusterUnavailable when no answer."""
        from raylite.util.state import RayStateApiException
        from raylite.util.state.fetch import ask_tasks

        try:
            return ask_tasks(self.target, filters, limit, offset, False, REPLY_TIMEOUT_S)
        except RayStateApiException as e:
            raise ClusterUnavailable(str(e)) from None

    def task_summary(self) -> tuple:
        """((func_or_class_name, type, state, count), ...) over every task record the GCS
        keeps; ClusterUnavailable when no answer."""
        from raylite.util.state import RayStateApiException
        from raylite.util.state.fetch import ask_tasks

        try:
            return ask_tasks(self.target, [], -1, 0, True, REPLY_TIMEOUT_S).records
        except RayStateApiException as e:
            raise ClusterUnavailable(str(e)) from None

    def log_dir(self) -> str | None:
        """<session_dir>/logs, or None when the session dir is not known (a remote head)."""
        return os.path.join(self.session_dir, "logs") if self.session_dir else None


def resolve(address: str | None, temp: str) -> Reader:
    """A Reader for `address` (default: the head `raylite start` recorded in `temp`), with the
    token found as the state API finds it. ClusterUnavailable says what to do when none."""
    from raylite.util.state import RayStateApiException
    from raylite.util.state.fetch import resolve as target_of

    try:
        target = target_of(address or "auto", temp)
    except RayStateApiException as e:
        raise ClusterUnavailable(str(e)) from None
    if target.address is None:
        raise ClusterUnavailable("the dashboard needs a running cluster, not local mode")
    return Reader(target)
