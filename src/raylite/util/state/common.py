"""What every state call shares: the record type, filters, the limit, and partial results.

Pure logic (no I/O), unit-tested in tests/unit/test_state_common.py:

    rows (dicts in Ray's schema, schema.py)
      ─► apply_filters(rows, filters, columns)   every filter must hold: ("state", "=", "RUNNING");
      │                                          a key that is no column raises, listing the columns
      ─► limit                                   after the filters, so a filter never misses a match
      ─► StateList(rows, total, missing)         `total` matched; `missing` owners did not answer;
                                                 `partial` says why the list is not everything

Filter values compare as Ray's do (raylite._core.filters, the one rule the task-event table
applies too): a string value matches a string field case-insensitively, and a field of another
type (bool, int, float, None) by its text ("true", "3", "none"), so `--filter is_alive=True`
and `filters=[("pid", "=", 1234)]` both work.
"""
from __future__ import annotations

import warnings

from raylite._core.filters import PREDICATES, matches

DEFAULT_LIMIT = 100            # as Ray's list_* (and `ray list`)


class RayStateApiException(Exception):
    """A state call could not answer: no cluster, bad filters, or (with
    raise_on_missing_output) an answer that would be partial."""


class StateRecord(dict):
    """One row of a state call: a dict that also allows attribute access (r.state, r["state"])."""
    __slots__ = ()

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; "
                                 f"fields: {', '.join(self)}") from None

    def __dir__(self):
        return list(self) + list(dict.__dir__(self))


class StateList(list):
    """The rows a list_* call returns (a list), and how complete they are.

    total     rows that matched the filters, before the limit
    missing   addresses of the owners that did not answer in time (their tasks and objects
              are not in the list)
    dropped   task records the store dropped (bounded per job), `kept` its bound per job
    partial   one line per reason the list is not everything that matched (empty: complete)
    """

    def __init__(self, rows=(), total: int = 0, missing: tuple = (), limit: int | None = None,
                 dropped: int = 0, kept: int = 0):
        super().__init__(rows)
        self.total, self.missing, self.limit = total, tuple(missing), limit
        self.dropped, self.kept = dropped, kept

    @property
    def partial(self) -> list[str]:
        out = []
        if self.total > len(self):
            out.append(f"{self.total - len(self)} more matched but were left out by the limit "
                       f"({self.limit}): pass a higher limit (CLI: --limit) to see them")
        if self.missing:
            out.append(f"no answer in time from {len(self.missing)} owner(s) "
                       f"({', '.join(self.missing)}): what they own is not listed")
        if self.dropped:
            out.append(f"{self.dropped} older task record(s) were dropped: the cluster keeps "
                       f"{self.kept or 'a bounded number of'} per job, oldest finished first out "
                       "(set RAYLITE_TASK_EVENTS_MAX_PER_JOB on the head to keep more)")
        return out


def parse_filter(text: str) -> tuple[str, str, str]:
    """'key=value' or 'key!=value' (the CLI's --filter) -> (key, predicate, value)."""
    for pred in ("!=", "="):
        key, sep, value = text.partition(pred)
        if sep and key.strip():
            return key.strip(), pred, value.strip()
    raise RayStateApiException(f"bad filter {text!r}: write KEY=VALUE or KEY!=VALUE, "
                               "e.g. --filter state=RUNNING")


def check_filters(filters, columns) -> list[tuple[str, str, object]]:
    """The filters as (key, predicate, value) triples, each checked against `columns`."""
    out = []
    for f in filters or ():
        if isinstance(f, str):
            f = parse_filter(f)
        try:
            key, pred, value = f
        except (TypeError, ValueError):
            raise RayStateApiException(f"bad filter {f!r}: give (key, predicate, value), e.g. "
                                       '("state", "=", "RUNNING")') from None
        if pred not in PREDICATES:
            raise RayStateApiException(f"bad predicate {pred!r} in filter {f!r}: use one of "
                                       f"{', '.join(PREDICATES)}")
        if key not in columns:
            raise RayStateApiException(f"{key!r} is not a column to filter on; the columns are: "
                                       f"{', '.join(sorted(columns))}")
        out.append((key, pred, value))
    return out


def select(rows, filters, limit: int | None, missing: tuple = (), keep=None,
           total: int | None = None) -> StateList:
    """The rows that pass every filter, at most `limit` (None: all) of them, each cut to the
    columns in `keep` (None: all of them). `total`: how many rows there were when the caller
    passed only the first ones (no filters)."""
    if filters:
        rows = [r for r in rows if matches(r, filters)]
    elif not isinstance(rows, list):
        rows = list(rows)
    if limit is not None and limit < 0:
        raise RayStateApiException(f"limit must be a positive number or None, not {limit}")
    shown = rows if limit is None else rows[:limit]
    total = len(rows) if total is None or filters else total
    if keep is not None:
        return StateList((StateRecord({k: r[k] for k in keep}) for r in shown), total, missing,
                         limit)
    return StateList((StateRecord(r) for r in shown), total, missing, limit)


def report(result: StateList, raise_on_missing_output: bool, what: str) -> StateList:
    """Says how `result` is partial: a warning each reason (as Ray warns), or, for owners that
    did not answer and `raise_on_missing_output`, RayStateApiException."""
    if result.missing and raise_on_missing_output:
        raise RayStateApiException(
            f"{what}: no answer in time from {', '.join(result.missing)}, so the list would be "
            "partial; pass raise_on_missing_output=False to get what did answer, or a longer "
            "timeout")
    for reason in result.partial:
        warnings.warn(f"{what}: {reason}", stacklevel=4)  # the caller of list_*
    return result
