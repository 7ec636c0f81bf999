"""The GCS's own task events: the attempts of an actor's creation task (mixed into
GcsService; run under its lock). The GCS decides restarts, so it is the one that knows an
incarnation ended and the next began (_core/actor_attempts.py has the rule):

    _died / _kill / no node to place it ─► _actor_died: GcsTables.actor_died, then
        attempt N FAILED (why) and, when it restarts, attempt N + 1 pending
        ─► straight into the GCS's TaskEventTable (no batch: the table is here)

Only actors created with task events on (ActorSpec.task_events) are recorded.
"""
from __future__ import annotations

import time
from typing import Any

from .._core import actor_attempts


class CreationEvents:
    tables: Any
    task_events: Any

    def _actor_died(self, actor_id: bytes, death: bytes | None, may_restart: bool, why: str,
                    error_type: str, on_purpose: bool) -> str:
        """GcsTables.actor_died (its new state returned), and the creation task's attempts."""
        entry = self.tables.actors.get(actor_id)
        before, attempt = (entry.state, entry.restarts) if entry is not None else ("DEAD", 0)
        after = self.tables.actor_died(actor_id, death, may_restart=may_restart, reason=why)
        if entry is not None and entry.spec.task_events:
            spec = entry.spec
            name = spec.meta.class_name
            message = f"ActorUnschedulableError: The actor {name} cannot be placed: {why}." \
                if error_type == actor_attempts.UNSCHEDULABLE else \
                f"ActorDiedError: The actor {name} died: {why}."
            events = actor_attempts.ended(
                actor_id, attempt, before, after, error_type, message, on_purpose, spec.job_id,
                name, actor_attempts.parent_of(self.task_events, actor_id, attempt), time.time(),
                (actor_id, attempt) in self.task_events.tasks)
            if events:
                self.task_events.add(events, spec.owner)
        return after
