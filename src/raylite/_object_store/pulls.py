"""Pulls of objects into one node: a pure state machine (no I/O, no threads, no clock).

    request(id, waiter, job) ──► [jobs to start now]   a pull already queued or running for
                                                        that id only gains the waiter
    finished(id)             ──► (waiters to answer, [jobs to start now])

One transfer per object and node: every reader of an object that is on its way
waits on that one pull. At most `limit` transfers run at once; the others wait
in order of request. A job is the shell's (what to fetch, from where, into what).
"""
from __future__ import annotations

from collections import deque
from typing import Any


class _Pull:
    __slots__ = ("job", "waiters", "running")

    def __init__(self, job: Any):
        self.job = job
        self.waiters: list = []
        self.running = False


class PullQueue:
    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"at least one transfer must be allowed to run, not {limit}")
        self.limit = limit
        self.pulls: dict[bytes, _Pull] = {}   # object id -> its pull, queued or running
        self.queue: deque = deque()           # ids not started yet, oldest first
        self.running = 0
        self.started = 0                      # transfers started so far (each object once)
        self.shared = 0                       # requests that joined a pull already there

    def __contains__(self, object_id: bytes) -> bool:
        return object_id in self.pulls

    def request(self, object_id: bytes, waiter: Any, job: Any) -> list:
        """A reader needs `object_id` here; returns the jobs to start now."""
        p = self.pulls.get(object_id)
        if p is not None:
            p.waiters.append(waiter)
            self.shared += 1
            return []
        p = self.pulls[object_id] = _Pull(job)
        p.waiters.append(waiter)
        self.queue.append(object_id)
        return self._next()

    def finished(self, object_id: bytes) -> tuple[list, list]:
        """A transfer ended (either way): its waiters, and the jobs to start now."""
        p = self.pulls.pop(object_id, None)
        if p is None:
            return [], []
        if p.running:
            self.running -= 1
        else:  # ended before it started (its source died): it leaves the queue
            self.queue.remove(object_id)
        return p.waiters, self._next()

    def _next(self) -> list:
        out = []
        while self.queue and self.running < self.limit:
            p = self.pulls[self.queue.popleft()]
            p.running = True
            self.running += 1
            self.started += 1
            out.append(p.job)
        return out

    def statistics(self) -> dict:
        return {"running": self.running, "queued": len(self.queue), "started": self.started,
                "shared": self.shared}
