"""An actor's creation task across its restarts (pure): each incarnation is one attempt.

Ray's ACTOR_CREATION_TASK is a task record whose id is the actor's and whose name is
"Class.__init__". Its attempt number is the actor's restart count, as in Ray (the GCS
numbers the attempt when it restarts the actor):

    owner      creates the actor ─► attempt 0 PENDING_NODE_ASSIGNMENT (owner/events.py)
    worker     runs __init__ of incarnation N ─► attempt N RUNNING, FINISHED (or FAILED, with
               the user's error: TASK_EXECUTION_EXCEPTION)
    GCS        the incarnation ends ─► ended(): attempt N FAILED (WORKER_DIED, NODE_DIED,
               ACTOR_DIED, ACTOR_UNSCHEDULABLE_ERROR), and when it restarts, attempt N + 1
               PENDING_NODE_ASSIGNMENT; local mode does the same on ray.kill(no_restart=False)

An attempt whose __init__ finished and whose actor then ended on purpose, for good
(ray.kill, its last handle gone, its owner gone), stays FINISHED: its creation succeeded. An
attempt ended by anything else (its process died, a kill that restarts it, a kill before
its __init__ finished, no node to place it) is FAILED.
"""
from __future__ import annotations

from typing import Any

from .task_events import FAILED, PARENT, PENDING_NODE

WORKER_DIED = "WORKER_DIED"
NODE_DIED = "NODE_DIED"
ACTOR_DIED = "ACTOR_DIED"
UNSCHEDULABLE = "ACTOR_UNSCHEDULABLE_ERROR"


def ended(actor_id: bytes, attempt: int, before: str, after: str, error_type: str,
          message: str, on_purpose: bool, job_id: bytes, class_name: str, parent: Any,
          now: float, known: bool = True) -> list:
    """The events of incarnation `attempt` ending: the actor was `before` (PENDING,
    RESTARTING or ALIVE) and is now `after` (RESTARTING or DEAD); `parent` is the task that
    created the actor (None: a driver), for the next attempt's record. `known`: the store
    has a record of the attempt; when not (its owner's event of attempt 0 is still on its
    way), one is opened first, so the failure is kept (the owner's event, when it comes,
    fills in its creation time and never moves it back)."""
    if before not in ("PENDING", "RESTARTING", "ALIVE"):
        return []  # dead already: nothing ended now
    out = []
    info = (job_id, f"{class_name}.__init__", actor_id, parent)
    if before != "ALIVE" or after == "RESTARTING" or not on_purpose:
        if not known:
            out.append((actor_id, attempt, PENDING_NODE, now, info))
        out.append((actor_id, attempt, FAILED, now, (error_type, message[:500])))
    if after == "RESTARTING":
        out.append((actor_id, attempt + 1, PENDING_NODE, now, info))
    return out


def parent_of(table: Any, task_id: bytes, attempt: int) -> bytes | None:
    """The parent task id the store keeps for this attempt (None when none, or not kept)."""
    row = table.row((task_id, attempt))
    if row is None or not row[PARENT]:
        return None
    return bytes.fromhex(row[PARENT])
