"""Task events in local mode: the same event vocabulary and the same bounded store as a
cluster's GCS (raylite._core.task_events), kept in the driver's process.

    LocalRuntime._run ─► traced(task, body): each run of the body (each attempt) notes
        a new attempt and RUNNING before, FINISHED (or RAN and FAILED) after, in the owner
        core's TaskEvents buffer ─► drained into this process's TaskEventTable
    list_tasks / summarize_tasks / timeline ─► answer(GetTaskEvents) ─► TaskEventsReply

Every task runs on the caller's thread, so its node and worker are this process: the
local node's id, and the process id as its pid.
"""
from __future__ import annotations

import os
import time
from typing import Any

from .._core import actor_attempts
from .._core.task_events import (FAILED, FINISHED, PENDING_ACTOR, PENDING_NODE, RAN, RUNNING,
                                 TaskEventTable)
from .._protocol import messages as m

DRAIN_AT = 1000   # events buffered before they go into the table (and at every question)


class LocalTaskEvents:
    def __init__(self, events: Any, node_id: bytes, job_id: bytes, max_per_job: int):
        self.events = events        # the owner core's TaskEvents buffer
        events.job_id = job_id
        self.node_id = node_id.hex()
        self.table = TaskEventTable(max_per_job)

    def traced(self, task: Any, body: Any) -> Any:
        """`body`, noting each run of it as an attempt of `task` (run under the caller's
        thread; the buffer is appended to without a lock: list.append is atomic)."""
        events = self.events

        def run(*args: Any, **kwargs: Any) -> Any:
            tid, attempt = task.task_id, task.attempt
            events.new(task, PENDING_NODE if task.actor_id in (None, tid) else PENDING_ACTOR)
            start = time.time()
            events.add(tid, attempt, RUNNING, (events.job_id, task.name))
            try:
                value = body(*args, **kwargs)
            except BaseException as exc:
                events.add(tid, attempt, RAN, (events.job_id, task.name, start))
                events.ended(task, exc, attempt)
                raise
            events.add(tid, attempt, FINISHED, (events.job_id, task.name, start))
            return value
        return run

    def restarted(self, entry: Any, on: bool) -> int:
        """The attempt of the actor's creation task that starts now (its GCS entry's restarts,
        returned). When it is not the first, the one before was ended by
        ray.kill(no_restart=False) (local mode has no process to die): that attempt FAILED
        (the new one is recorded as its __init__ runs)."""
        restarts, actor_id = entry.restarts, entry.spec.actor_id
        class_name = entry.spec.meta.class_name
        if not restarts or not on:
            return restarts
        for event in actor_attempts.ended(actor_id, restarts - 1, "ALIVE", "RESTARTING",
                                          actor_attempts.ACTOR_DIED,
                                          f"ActorDiedError: The actor {class_name} died: it "
                                          "was killed (ray.kill) and restarts.", True,
                                          self.events.job_id, class_name, None, time.time()):
            if event[2] == FAILED:
                self.events.add(actor_id, restarts - 1, FAILED, event[4])
        return restarts

    def drain(self, force: bool = False) -> None:
        """Moves the buffered events into the table (call with the runtime's lock held)."""
        if self.events.waiting() and (force or len(self.events.buffer) >= DRAIN_AT):
            events, lost, _ = self.events.take()  # whole tasks come from workers' replies: none here
            self.table.add(events, "local", self.node_id, self.node_id, os.getpid(), lost)

    def answer(self, request: m.GetTaskEvents) -> m.TaskEventsReply:
        self.drain(True)
        return m.TaskEventsReply(request.req, *self.table.answer(
            request.filters, request.limit, request.offset, request.summary))
