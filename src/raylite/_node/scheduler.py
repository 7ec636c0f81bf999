"""The node's resource scheduler: a pure state machine (no I/O, no clock).

Events come in as method calls; each returns a list of instructions for the
I/O shell (server.py) to carry out:

    request_lease / place_actor ─┐                   ┌─► Grant(owner, req, lease, worker, gpus)
    worker_registered            ├─► _schedule() ───┼─► StartActor(actor, lease, worker, gpus)
    return_lease / worker_died   │                   ├─► Spawn(n)          fork n more workers
    set_blocked / owner_gone     ┘                   ├─► Kill(worker)
    reap_idle(now) ─────────────────────────────────►├─► Kill(worker)    idle beyond the CPU count
                                                     ├─► Infeasible(owner, name, demand)
                                                     └─► RevokeIdle()      ask owners for idle leases

State it owns: total / available resources, free GPU ids, every worker
(idle, leased, hosting an actor), every lease, and the queue of requests
that do not fit yet. `state(node_id, owners)` answers a state request with frozen
records: this node (what is free), its registered workers (IDLE, LEASED, ACTOR; their
pids are the worker table's), every lease, and the queued requests as PENDING leases.
`statistics()` gives the counts.

Workers are keyed by the runtime_env they were started with (`env`: an opaque key, None
for a plain worker): a request is granted only a worker of its own env, and Spawn names
the env the new workers need. An idle worker of another (non-plain) env is ended when a
request must wait for a worker of its env, so they do not pile up.
"""
from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from .. import _resources as res
from .._core.records import LeaseRecord, NodeRecord, StateSnapshot, WorkerRecord


class Grant(NamedTuple):
    owner: Any
    req: int
    lease_id: bytes
    worker_id: bytes
    gpu_ids: tuple


class StartActor(NamedTuple):
    actor_id: bytes
    lease_id: bytes
    worker_id: bytes
    gpu_ids: tuple


class Spawn(NamedTuple):
    count: int
    env: Any = None       # the runtime_env key the workers start with (None: plain)


class Kill(NamedTuple):
    worker_id: bytes


class Infeasible(NamedTuple):
    owner: Any
    name: str
    demand: dict


class RevokeIdle(NamedTuple):
    pass


class _Request(NamedTuple):
    owner: Any            # the owner's connection key, or None for an actor placement
    req: int
    demand: dict
    name: str
    actor_id: bytes | None
    env: Any = None


class _Lease:
    __slots__ = ("lease_id", "worker_id", "owner", "demand", "gpu_ids", "blocked", "actor_id", "name")

    def __init__(self, lease_id: bytes, worker_id: bytes, owner: Any, demand: dict,
                 gpu_ids: tuple, actor_id: bytes | None, name: str = ""):
        self.lease_id, self.worker_id, self.owner = lease_id, worker_id, owner
        self.demand, self.gpu_ids, self.actor_id = demand, gpu_ids, actor_id
        self.blocked = False
        self.name = name


LOG_SIZE = 256  # events kept in NodeScheduler.log


class NodeScheduler:
    def __init__(self, total: dict, new_id: Any, max_starting: int = 4):
        self.total = dict(total)
        self.available = dict(total)
        self.free_gpus = list(range(int(total.get("GPU", 0))))
        self._new_id = new_id
        self.max_starting = max_starting
        self.idle: deque[bytes] = deque()
        self.workers: dict[bytes, bytes | None] = {}   # worker id -> lease id (None = idle)
        self.worker_env: dict[bytes, Any] = {}         # worker id -> its env key, if not None
        self.starting_env: dict[Any, int] = {}         # env key -> workers starting with it
        self.leases: dict[bytes, _Lease] = {}
        self.queue: deque[_Request] = deque()
        self.starting = 0
        self.warned: set = set()
        self.log: deque = deque(maxlen=LOG_SIZE)  # recent events, newest last, for debugging
        self._idle_periods = 0                       # numbers each time a worker becomes idle
        self._idle_period: dict[bytes, int] = {}     # idle worker -> the number of its period
        self._idle_seen: dict[bytes, tuple] = {}     # idle worker -> (period, first tick seeing it)

    # -- events --------------------------------------------------------------
    def request_lease(self, owner: Any, req: int, demand: dict, name: str, env: Any = None) -> list:
        self.log.append(("request", name, req))
        out = self._check_feasible(owner, name, demand)
        self.queue.append(_Request(owner, req, demand, name, None, env))
        return out + self._schedule()

    def place_actor(self, actor_id: bytes, demand: dict, placement: dict, name: str,
                    env: Any = None) -> list:
        self.log.append(("place actor", actor_id, name))
        out = self._check_feasible(None, name, placement)
        self.queue.append(_Request(None, 0, demand, name, actor_id, env))
        return out + self._schedule()

    def worker_started(self, n: int = 1, env: Any = None) -> None:
        self.starting += n
        self.starting_env[env] = self.starting_env.get(env, 0) + n

    def _started(self, env: Any) -> None:
        self.starting = max(0, self.starting - 1)
        n = self.starting_env.get(env, 0) - 1
        if n > 0:
            self.starting_env[env] = n
        else:
            self.starting_env.pop(env, None)

    def worker_registered(self, worker_id: bytes, env: Any = None) -> list:
        self.log.append(("registered", worker_id))
        self._started(env)
        self.workers[worker_id] = None
        if env is not None:
            self.worker_env[worker_id] = env
        self._to_idle(worker_id)
        return self._schedule()

    def worker_failed_to_start(self, env: Any = None) -> list:
        self.log.append(("failed to start",))
        self._started(env)
        return self._schedule()

    def return_lease(self, lease_id: bytes, kill_worker: bool = False) -> list:
        self.log.append(("return", lease_id, kill_worker))
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return []
        self._release(lease)
        out: list = []
        if kill_worker or lease.actor_id is not None:
            self.workers.pop(lease.worker_id, None)
            self.worker_env.pop(lease.worker_id, None)
            out.append(Kill(lease.worker_id))
        else:
            self.workers[lease.worker_id] = None
            self._to_idle(lease.worker_id)
        return out + self._schedule()

    def worker_died(self, worker_id: bytes) -> list:
        self.log.append(("died", worker_id))
        lease_id = self.workers.pop(worker_id, None)
        self.worker_env.pop(worker_id, None)
        try:
            self.idle.remove(worker_id)
        except ValueError:
            pass
        self._idle_period.pop(worker_id, None)
        lease = self.leases.pop(lease_id, None) if lease_id else None
        if lease is not None:
            self._release(lease)
        return self._schedule()

    def set_blocked(self, worker_id: bytes, blocked: bool) -> list:
        lease = self.leases.get(self.workers.get(worker_id) or b"")
        if lease is None or lease.blocked == blocked or not lease.demand.get("CPU"):
            return []
        lease.blocked = blocked
        cpu = {"CPU": lease.demand["CPU"]}
        if blocked:
            res.add(self.available, cpu)
            return self._schedule()
        res.subtract(self.available, cpu)  # may oversubscribe for a moment, as Ray does
        return []

    def owner_gone(self, owner: Any) -> list:
        """A driver or worker disconnected: drop its requests, take back its leases."""
        self.log.append(("owner gone", owner))
        self.queue = deque(r for r in self.queue if r.owner != owner)
        out: list = []
        for lease in [lease for lease in self.leases.values() if lease.owner == owner]:
            out += self.return_lease(lease.lease_id, kill_worker=True)
        return out + self._schedule()

    def reap_idle(self, now: float, keep: int, after_s: float) -> list:
        """Kill(worker) for the idle workers beyond `keep` (the node's CPU count: Ray's soft
        limit) that have been idle for `after_s` seconds, the longest idle first. `now` comes
        from the shell's clock at each tick; an idle period counts from the first tick that
        sees it, so a worker goes between `after_s` and `after_s` plus one tick after it
        became idle. A worker leased in between starts a new period."""
        seen = {}
        for w in self.idle:
            period, first = self._idle_seen.get(w, (None, now))
            seen[w] = (period, first) if period == self._idle_period.get(w) else \
                (self._idle_period.get(w), now)
        self._idle_seen = seen
        surplus = len(self.workers) - keep
        out: list = []
        for w in list(self.idle):  # in the order they became idle
            if surplus <= 0:
                break
            if now - seen[w][1] >= after_s:
                self.log.append(("reap idle", w))
                self.idle.remove(w)
                del self.workers[w]
                self.worker_env.pop(w, None)
                self._idle_period.pop(w, None)
                del seen[w]
                out.append(Kill(w))
                surplus -= 1
        return out

    def _to_idle(self, worker_id: bytes) -> None:
        self.idle.append(worker_id)
        self._idle_periods += 1
        self._idle_period[worker_id] = self._idle_periods

    def cancel_actor_placement(self, actor_id: bytes) -> None:
        self.queue = deque(r for r in self.queue if r.actor_id != actor_id)

    def lease_of_actor(self, actor_id: bytes) -> bytes | None:
        for lease in self.leases.values():
            if lease.actor_id == actor_id:
                return lease.lease_id
        return None

    # -- the decision --------------------------------------------------------
    def _check_feasible(self, owner: Any, name: str, demand: dict) -> list:
        if res.fits(demand, self.total):
            return []
        return [Infeasible(owner, name, demand)]

    def _schedule(self) -> list:
        out: list = []
        waiting: deque[_Request] = deque()
        need: dict[Any, int] = {}      # env -> requests that fit but have no worker of theirs
        blocked_on_resources = False
        while self.queue:
            r = self.queue.popleft()
            if not res.fits(r.demand, self.available):
                waiting.append(r)
                blocked_on_resources = True
                continue
            worker_id = self._take_idle(r.env)
            if worker_id is None:
                waiting.append(r)
                need[r.env] = need.get(r.env, 0) + 1
                continue
            lease_id = self._new_id()
            n_gpus = int(r.demand.get("GPU", 0))
            gpus = tuple(self.free_gpus[:n_gpus])
            del self.free_gpus[:n_gpus]
            res.subtract(self.available, r.demand)
            self.leases[lease_id] = _Lease(lease_id, worker_id, r.owner, r.demand, gpus, r.actor_id,
                                           r.name)
            self.workers[worker_id] = lease_id
            if r.actor_id is not None:
                out.append(StartActor(r.actor_id, lease_id, worker_id, gpus))
            else:
                out.append(Grant(r.owner, r.req, lease_id, worker_id, gpus))
                self.log.append(("grant", lease_id, worker_id))
        self.queue = waiting
        for env, n in need.items():
            spawn = min(n - self.starting_env.get(env, 0), self.max_starting - self.starting)
            if spawn > 0:
                self.worker_started(spawn, env)
                out.append(Spawn(spawn, env) if env is not None else Spawn(spawn))
                out += self._end_stale_idle(env, spawn)
        if blocked_on_resources and any(lease.actor_id is None for lease in self.leases.values()):
            out.append(RevokeIdle())
        return out

    def _take_idle(self, env: Any) -> bytes | None:
        """The longest-idle worker of `env`, taken out of the idle queue; None if none."""
        if env is None and not self.worker_env:  # the common case: every worker is plain
            worker_id = self.idle.popleft() if self.idle else None
        else:
            worker_id = next((w for w in self.idle if self.worker_env.get(w) == env), None)
            if worker_id is not None:
                self.idle.remove(worker_id)
        if worker_id is not None:
            del self._idle_period[worker_id]
        return worker_id

    def _end_stale_idle(self, env: Any, n: int) -> list:
        """Ends up to `n` idle workers of other runtime_envs (a plain one stays: it is warm)."""
        stale = [w for w in self.idle if self.worker_env.get(w, env) != env][:n]
        for w in stale:
            self.idle.remove(w)
            self.workers.pop(w, None)
            self.worker_env.pop(w, None)
            self._idle_period.pop(w, None)
        return [Kill(w) for w in stale]

    def _release(self, lease: _Lease) -> None:
        demand = dict(lease.demand)
        if lease.blocked and "CPU" in demand:
            demand.pop("CPU")
        res.add(self.available, demand)
        self.free_gpus.extend(lease.gpu_ids)
        self.free_gpus.sort()

    def statistics(self) -> dict:
        return {"total": dict(self.total), "available": dict(self.available),
                "workers": len(self.workers), "idle_workers": len(self.idle),
                "starting_workers": self.starting, "leases": len(self.leases),
                "actor_workers": sum(1 for lease in self.leases.values() if lease.actor_id),
                "pending_requests": len(self.queue),
                "pending_demands": [r.demand for r in self.queue]}

    def state(self, node_id: str, owners: dict) -> StateSnapshot:
        """This node as the scheduler knows it. `owners` maps an owner's key (what
        request_lease was given) to its address; a lease placing an actor has no owner
        (None). The node's address, hostname and role are the GCS's to say (None here)."""
        node = NodeRecord(node_id, None, None, True, None, dict(self.total), dict(self.available))
        workers = []
        for worker_id, lease_id in self.workers.items():
            lease = self.leases.get(lease_id) if lease_id is not None else None
            actor = lease.actor_id if lease is not None else None
            workers.append(WorkerRecord(worker_id.hex(), node_id, None,
                                        "IDLE" if lease is None else "ACTOR" if actor else "LEASED",
                                        lease_id.hex() if lease is not None else None,
                                        actor.hex() if actor else None))
        leases = [LeaseRecord(x.lease_id.hex(), node_id, x.worker_id.hex(), owners.get(x.owner),
                              dict(x.demand), x.name) for x in self.leases.values()]
        leases += [LeaseRecord("", node_id, "", owners.get(r.owner), dict(r.demand), r.name,
                               "PENDING") for r in self.queue]
        return StateSnapshot(f"node {node_id}", nodes=(node,), workers=tuple(workers),
                             leases=tuple(leases))
