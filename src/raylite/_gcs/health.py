"""Which nodes still answer: the GCS's health check, pure (no clock, no thread, no I/O).

    a node registers ──► joined(node, now)       every message from it ──► heard(node, now)
    the GCS's health thread, every period_s ──► expired(now) ──► the nodes not heard from
        for timeout_s: the shell marks each dead (as if its link had closed) and closes
        its link, so a node that wakes up again finds itself out of the cluster and stops
    a node's link closes ──► left(node)

A node sends nothing for long only when it is idle; then it sends a NodeHeartbeat every
`heartbeat_s` (a fifth of the timeout, at most 1 s: one small message a second per idle
node), so a node is marked dead only after about five heartbeats in a row went missing:
frozen (SIGSTOP), its machine gone, or the network between it and the head cut. A link
that closes is quicker: the GCS sees the close at once (service.py, `lost`). The head's
own node shares the GCS's process: it is never watched (if it froze, so would the GCS).

The timeout comes from RAYLITE_HEALTH_CHECK_TIMEOUT_S (default 10 s, _config.py), read
by the head; joined nodes learn their heartbeat period from the head when they register.
"""
from __future__ import annotations

HEALTH_CHECK_TIMEOUT_S = 10.0
MAX_HEARTBEAT_S = 1.0


class Health:
    """The time each watched node was last heard from; `expired` names the silent ones."""

    def __init__(self, timeout_s: float = HEALTH_CHECK_TIMEOUT_S):
        if not timeout_s > 0:
            raise ValueError(f"a health check timeout must be > 0 seconds, not {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.heartbeat_s = min(MAX_HEARTBEAT_S, self.timeout_s / 5)  # what a node sends at
        self.period_s = self.heartbeat_s                             # how often to look
        self.last: dict[bytes, float] = {}   # node id -> when it was last heard from
        self.checked: float | None = None    # when expired() last ran
        self.marked_dead = 0                 # nodes expired so far

    def joined(self, node_id: bytes, now: float) -> None:
        self.last[node_id] = now

    def heard(self, node_id: bytes, now: float) -> None:
        """Anything from a watched node counts (a heartbeat, a report, a request)."""
        if node_id in self.last:
            self.last[node_id] = now

    def left(self, node_id: bytes) -> None:
        self.last.pop(node_id, None)

    def expired(self, now: float) -> list[tuple[bytes, float]]:
        """The nodes silent for longer than the timeout, each with how long it has been
        silent; they are no longer watched (the caller marks them dead). When this check
        itself comes late by half the timeout (the head's process was stopped, or starved),
        the head could not have heard anyone meanwhile: every node gets a fresh start."""
        late = self.checked is not None and now - self.checked > self.period_s + self.timeout_s / 2
        self.checked = now
        if late:
            for node_id in self.last:
                self.last[node_id] = now
            return []
        limit = now - self.timeout_s
        gone = [(n, now - t) for n, t in self.last.items() if t < limit]
        for node_id, _ in gone:
            del self.last[node_id]
        self.marked_dead += len(gone)
        return gone

    def statistics(self) -> dict:
        return {"watched": len(self.last), "timeout_s": self.timeout_s,
                "heartbeat_s": self.heartbeat_s, "marked_dead": self.marked_dead}
