"""Every worker process a node daemon asked for, from the request to its exit (pure: no I/O,
no clock; the shell passes `now`).

    requested(id) ─► starting ─forked(id, pid)─► register(id, pid, address) ─► running ─► gone(id)
                        │ exited(pid) before registering, expired(now), fork_server_lost()
                        └──────────────► a failed start (the shell counts it, spawns again)
    exited(pid) of a running worker ─► its reason, kept by address for owners asking (death_of)

Only ids this daemon issued, with the pid its fork server reported, may register;
only pids the fork server reported and has not reported dead are ever signalled
(through the fork server, which checks again). `statistics()` reports the counts;
`state(node_id)` answers a state request with a record per worker process: STARTING
(pid None until the fork server reports it), DEAD (its exit is known, its connection
not closed yet), or registered and alive, whose state (IDLE, LEASED, ACTOR) is the
scheduler's to say: None here, filled in by records.overlay.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from .._core.records import StateSnapshot, WorkerRecord

WAIT = "wait"   # register(): the fork server has not reported this worker's pid yet


class Proc:
    __slots__ = ("worker_id", "pid", "since", "sent", "address", "reason", "early", "waiters",
                 "env")

    def __init__(self, worker_id: bytes, since: float, env: Any = None):
        self.worker_id, self.since, self.env = worker_id, since, env  # env: its runtime_env key
        self.pid = 0              # 0 until the fork server reports it
        self.sent = False         # the request reached a fork server
        self.address = ""         # where it serves owners, once registered
        self.reason: str | None = None   # how it died, once known
        self.early: Any = None    # a registration that came before the fork report
        self.waiters: list = []   # owners asking how it died, until that is known


class WorkerTable:
    def __init__(self, start_timeout: float, remember: int = 256):
        self.start_timeout = start_timeout
        self.remember = remember
        self.starting: dict[bytes, Proc] = {}   # requested, not registered
        self.running: dict[bytes, Proc] = {}    # registered, connection not yet gone
        self.by_pid: dict[int, Proc] = {}       # forked, exit not reported: safe to signal
        self.deaths: OrderedDict[str, str] = OrderedDict()   # address -> how it died
        self.log: deque = deque(maxlen=remember)  # recent events, newest last, for debugging

    def requested(self, worker_id: bytes, now: float, env: Any = None) -> Proc:
        p = self.starting[worker_id] = Proc(worker_id, now, env)
        self.log.append(("requested", worker_id, now))
        return p

    def unsent(self) -> list[Proc]:
        return [p for p in self.starting.values() if not p.sent]

    def forked(self, worker_id: bytes, pid: int) -> Proc | None:
        """None: no longer wanted (expired, or never asked for): the shell kills it."""
        p = self.starting.get(worker_id)
        if p is None or pid <= 0 or p.pid:
            return None
        p.pid = pid
        self.by_pid[pid] = p
        self.log.append(("forked", worker_id, pid))
        return p

    def register(self, worker_id: bytes, pid: int, address: str) -> str | None:
        """None when accepted; WAIT when its fork is not reported yet; else why it is refused."""
        p = self.starting.get(worker_id)
        if p is None:
            return f"worker id {worker_id.hex()[:16]} is not a worker this daemon is starting"
        if pid <= 0:
            return f"pid {pid} is not a process id"
        if not p.pid:
            return WAIT
        if p.pid != pid:
            return f"pid {pid} is not worker {worker_id.hex()[:16]}'s pid ({p.pid})"
        del self.starting[worker_id]
        self.running[worker_id] = p
        self.log.append(("registered", worker_id, pid))
        p.address = address
        self.deaths.pop(address, None)  # an older worker that had this address
        return None

    def fork_failed(self, worker_id: bytes) -> Proc | None:
        self.log.append(("fork failed", worker_id))
        return self.starting.pop(worker_id, None)

    def exited(self, pid: int, reason: str) -> tuple[Proc | None, bool]:
        """(the worker, True if it had not registered: a failed start)."""
        p = self.by_pid.pop(pid, None)
        if p is None:
            return None, False
        p.reason = reason
        self.log.append(("exited", p.worker_id, pid, reason))
        if self.starting.get(p.worker_id) is p:
            del self.starting[p.worker_id]
            return p, True
        self._remember(p)
        return p, False

    def expired(self, now: float) -> list[Proc]:
        """Workers that did not register within start_timeout: failed starts (the shell kills
        them; their exit is then ignored)."""
        late = [p for p in self.starting.values() if now - p.since > self.start_timeout]
        for p in late:
            del self.starting[p.worker_id]
        return late

    def next_deadline(self) -> float | None:
        return min((p.since for p in self.starting.values()), default=None)

    def fork_server_lost(self, reason: str) -> tuple[list[Proc], list[Proc]]:
        """The fork server died and its workers with it: (failed starts, running workers, now
        with `reason`). None of their pids is ours to signal any more."""
        failed = [p for p in self.starting.values() if p.sent]
        for p in failed:
            del self.starting[p.worker_id]
        died = []
        for p in self.by_pid.values():
            if self.running.get(p.worker_id) is p:
                p.reason = reason
                self._remember(p)
                died.append(p)
        self.by_pid.clear()
        return failed, died

    def gone(self, worker_id: bytes) -> Proc | None:
        """Its connection closed: forgotten (how it died stays known by address)."""
        return self.running.pop(worker_id, None)

    def death_of(self, address: str) -> tuple[str | None, Proc | None]:
        """(how the worker at `address` died, or None; the live worker there, if any)."""
        if address in self.deaths:
            return self.deaths[address], None
        for p in self.running.values():
            if p.address == address:
                return None, p
        return None, None

    def pid_of(self, worker_id: bytes) -> int:
        """The pid to signal (through the fork server), 0 when none may be signalled."""
        p = self.running.get(worker_id) or self.starting.get(worker_id)
        return p.pid if p is not None and self.by_pid.get(p.pid) is p else 0

    def _remember(self, p: Proc) -> None:
        if p.address:
            self.deaths[p.address] = p.reason or ""
            self.deaths.move_to_end(p.address)
            while len(self.deaths) > self.remember:
                self.deaths.popitem(last=False)

    def state(self, node_id: str) -> StateSnapshot:
        workers = [WorkerRecord(p.worker_id.hex(), node_id, p.pid or None, "STARTING", None, None)
                   for p in self.starting.values()]
        workers += [WorkerRecord(p.worker_id.hex(), node_id, p.pid or None,
                                 None if p.reason is None else "DEAD", None, None)
                    for p in self.running.values()]
        return StateSnapshot(f"node {node_id}", workers=tuple(workers))

    def statistics(self) -> dict:
        return {"starting": len(self.starting), "running": len(self.running),
                "processes": len(self.by_pid)}
