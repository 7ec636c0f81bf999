"""Progress bars for tasks and actors, as Ray's `ray.experimental.tqdm_ray`.

    @raylite.remote
    def work(items):
        for x in tqdm(items, desc="work"):   # or tqdm(total=n) and bar.update(k)
            ...

A bar updated in a task or actor is drawn by the job's driver, one line per bar, never
inside a line of worker output: each state goes to the driver on the path worker output
takes (worker ─► node daemon ─► driver; raylite._runtime.progress), at most every 0.2 s
per bar and once more when it closes. In the driver itself, in local mode and in a
process without init(), the bar is drawn in the process (on stderr), like tqdm's.
On a terminal the open bars are redrawn in place below the output; elsewhere each bar
prints a line when it starts, every few seconds while it moves, and when it closes.

Not tqdm: this is a small bar of its own with tqdm's core calls (iteration, update,
set_description, refresh, close, context manager), not its formatting options.
"""
from __future__ import annotations

import itertools
import os
import threading
from typing import Any, Iterable

__all__ = ["tqdm"]

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def _runtime() -> Any:
    from raylite import _runtime

    return _runtime.current()


class tqdm:  # noqa: N801 - the name users import
    def __init__(self, iterable: Iterable | None = None, desc: str | None = None,
                 total: int | None = None, position: int | None = None, **_ignored: Any):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float))
                                  or total < 0):
            raise ValueError(f"tqdm: total must be a number >= 0 or None, got {total!r}")
        if position is not None and (not isinstance(position, int) or position < 0):
            raise ValueError(f"tqdm: position must be an integer >= 0 or None, got {position!r}")
        self.iterable = iterable
        self.desc = "" if desc is None else str(desc)
        self.total = None if total is None else int(total)
        self.position = position
        self.n = 0
        self.closed = False
        with _ids_lock:
            self._id = f"{os.getpid()}-{next(_ids)}"
        self._send()

    def __iter__(self):
        if self.iterable is None:
            raise TypeError("tqdm: nothing to iterate over (it was made without an iterable)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "tqdm":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("tqdm: this bar has no total")
        return self.total

    def update(self, n: int = 1) -> None:
        """Advances the bar by `n` (may be negative)."""
        if not isinstance(n, (int, float)) or isinstance(n, bool):
            raise TypeError(f"tqdm.update: n must be a number, got {n!r}")
        self.n += int(n)
        self._send()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = "" if desc is None else str(desc)
        if refresh:
            self._send()

    def refresh(self) -> None:
        self._send()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._send()

    def _send(self) -> None:
        from raylite._runtime.progress import BarState, display

        state = BarState(self._id, self.desc, self.n, self.total, self.position, os.getpid(),
                         self.closed)
        rt = _runtime()
        if rt is None:
            display().update(state)
        else:
            rt.progress(state)
