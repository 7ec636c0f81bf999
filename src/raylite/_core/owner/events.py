"""The owner's task events: what it saw happen to its tasks, buffered until the shell sends
them (pure; the vocabulary is raylite._core.task_events).

    core event (submit, arguments ready, a failure, cancel, retry) ─► TaskEvents.add
         only for a task whose `events` flag is set (enable_task_events, per task and per init)
    the shell, every ~100 ms (its maintenance thread) ─► take() ─► one TaskEvents message

Time comes from `clock`, the function the shell hands in (time.time in a cluster; the core
itself never reads a clock), and a task's parent (the task or actor call that submitted it)
from `parent_of`, read once per task, when its first attempt is recorded. The buffer is
bounded: past `limit` events an event is counted in `dropped` instead, and the count
travels with the next batch.
"""
from __future__ import annotations

from typing import Any

from ..task_events import FAILED, PENDING_NODE, error_info

LIMIT = 200_000              # events buffered between two sends


def _no_clock() -> float:
    return 0.0


def _no_parent() -> None:
    return None


class TaskEvents:
    __slots__ = ("clock", "buffer", "limit", "dropped", "_job_id", "decode_error", "_infos",
                 "parent_of")

    def __init__(self, clock: Any = _no_clock, decode_error: Any = None, limit: int = LIMIT,
                 parent_of: Any = None):
        self.clock = clock
        self.parent_of = parent_of or _no_parent
        self.decode_error = decode_error
        self.buffer: list = []
        self.limit = limit
        self.dropped = 0
        self._job_id: bytes = b""
        self._infos: dict = {}        # (name, actor id, class, parent) -> the one info tuple

    @property
    def job_id(self) -> bytes:
        """The job this process works for now (the shell sets it)."""
        return self._job_id

    @job_id.setter
    def job_id(self, job_id: bytes) -> None:
        if job_id != self._job_id:
            self._job_id, self._infos = job_id, {}

    def add(self, task_id: bytes, attempt: int, state: str, info: Any = None) -> None:
        b = self.buffer
        if len(b) < self.limit:
            b.append((task_id, attempt, state, self.clock(), info))
        else:
            self.dropped += 1

    def new(self, task: Any, state: str, class_name: str = "") -> None:
        """A new attempt of `task` (or a new call of an actor of `class_name`), in `state`."""
        parent = task.parent
        if parent is False:  # its first attempt: the task running where it was submitted
            parent = task.parent = self.parent_of()
        key = (task.name, task.actor_id, class_name, parent)
        info = self._infos.get(key)
        if info is None:  # one tuple per function (and parent): it pickles once per batch
            if len(self._infos) > 4096:
                self._infos.clear()
            name = f"{class_name}.{task.name}" if class_name else task.name
            info = self._infos[key] = (self._job_id, name, task.actor_id, parent)
        self.add(task.task_id, task.attempt, state, info)

    def actor_created(self, actor_id: bytes, class_name: str) -> None:
        """An actor's creation task (Ray's ACTOR_CREATION_TASK: its __init__; its id is the
        actor's) was submitted: its attempt 0, waiting for the GCS to place it (Ray's
        PENDING_NODE_ASSIGNMENT); its worker tells when __init__ ran, the GCS of restarts."""
        self.add(actor_id, 0, PENDING_NODE,
                 (self._job_id, f"{class_name}.__init__", actor_id, self.parent_of()))

    def ended(self, task: Any, error: Any, attempt: int | None = None) -> None:
        """The attempt failed with `error` (as the runtime stores it: the core's decode_error
        reads it). A success is its worker's to tell (FINISHED, with when it ran)."""
        a = task.attempt if attempt is None else attempt
        try:
            exc = self.decode_error(error) if self.decode_error is not None else error
            info = error_info(exc)
        except Exception:  # an error that does not unpickle here still ended the task
            info = ("TASK_EXECUTION_EXCEPTION", "")
        self.add(task.task_id, a, FAILED, info)

    def take(self) -> tuple[list, int]:
        """(events since the last take, how many were dropped since)."""
        out, self.buffer = self.buffer, []
        dropped, self.dropped = self.dropped, 0
        return out, dropped
