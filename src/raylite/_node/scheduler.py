"""The node's resource scheduler: a pure state machine (no I/O, no clock).

Events come in as method calls; each returns a list of instructions for the
I/O shell (server.py) to carry out:

    request_lease / place_actor ─┐                   ┌─► Grant(owner, req, lease, worker, gpus)
    worker_registered            ├─► _schedule() ───┼─► StartActor(actor, lease, worker, gpus)
    return_lease / worker_died   │                   ├─► Spawn(n)          fork n more workers
    set_blocked / owner_gone     │                   ├─► Kill(worker)
    update_cluster               │                   ├─► Infeasible(owner, name, demand)
    prepare / commit /           │                   ├─► RevokeIdle()      ask owners for idle leases
      return_bundles             ┘                   ├─► Spill(owner, req, address)  ask that node
    reap_idle(now) ─────────────────────────────────►├─► Kill(worker)    idle beyond the CPU count
                                                     ├─► Prepared(group)   its bundles are held here
                                                     └─► Refuse(owner, req, why)  never grantable

Across nodes (spillback.py): a lease request first goes through the cluster view,
which says whether it runs here, on another node (Spill: the owner asks that node's
daemon, marked spilled, and that node grants or queues it), or nowhere (Refuse). A
request queued here because what is free here does not fit is spilled later when a
broadcast of the view shows a node where it fits now (default strategy only).

Placement groups (the GCS decides which node holds which bundle; _gcs/groups.py): the
GCS asks `prepare_bundles(group, bundles)`; the reservation queues like a lease request
(needing no worker) until the sum of those bundles is free here, then that much leaves
`available` at once (all of this node's bundles or none) and Prepared tells the GCS.
`commit_bundles` adds the bundles' renamed resources (_resources.bundle_resources) to
`total` and `available`, so leases asking for them (a task in the group asks for its
demand renamed, _resources.in_group) are granted by the same rule as any other.
A bundle's GPU ids are set aside when it is held; a lease in it is given ids from
its bundle (any of the group's here, for index -1), and they go back to that bundle.
`return_bundles` undoes either phase: a committed group's leases are returned with their
workers killed, queued requests for it refused, its names dropped and the bundles'
resources given back; requests naming a removed group are refused from then on.

State it owns: total / available resources, free GPU ids, every worker
(idle, leased, hosting an actor), every lease, and the queue of requests
that do not fit yet. `state(node_id, owners)` answers a state request with frozen
records: this node (what is free), its registered workers (IDLE, LEASED, ACTOR; their
pids are the worker table's), every lease, and the queued requests as PENDING leases.
`statistics()` gives the counts.
"""
from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from .. import _resources as res
from .._core.records import LeaseRecord, NodeRecord, StateSnapshot, WorkerRecord
from .bundles import Group as _Group
from .bundles import removed as _removed
from .spillback import HERE, ClusterView, Refusal
from .env_workers import EnvWorkers


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
    env: Any = None       # the runtime_env key the workers start with (None: plain; env_workers.py)


class Kill(NamedTuple):
    worker_id: bytes


class Infeasible(NamedTuple):
    owner: Any
    name: str
    demand: dict


class RevokeIdle(NamedTuple):
    pass


class Spill(NamedTuple):
    owner: Any
    req: int
    address: str          # the daemon of the node to ask instead
class Prepared(NamedTuple):
    group: bytes


class Refuse(NamedTuple):
    owner: Any
    req: int
    why: str
    group_removed: bool = False  # its placement group was removed (else: no node ever can)


class _Request(NamedTuple):
    owner: Any            # the owner's connection key, or None for an actor placement
    req: int
    demand: dict
    name: str
    actor_id: bytes | None
    movable: bool = False  # default strategy, not spilled here: may go to another node later
    bundles: Any = None   # a group's reservation: (group id, {index: bundle}); needs no worker
    env: Any = None       # the runtime_env key of the worker it needs


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
    def __init__(self, total: dict, new_id: Any, max_starting: int = 4, node_id: str = ""):
        self.view = ClusterView(node_id)
        self.total = dict(total)
        self.available = dict(total)
        self.free_gpus = list(range(int(total.get("GPU", 0))))
        self._new_id = new_id
        self.max_starting = max_starting
        self.idle: deque[bytes] = deque()
        self.workers: dict[bytes, bytes | None] = {}   # worker id -> lease id (None = idle)
        self.leases: dict[bytes, _Lease] = {}
        self.queue: deque[_Request] = deque()
        self.starting = 0
        self.warned: set = set()
        self.groups: dict[bytes, _Group] = {}   # placement groups holding bundles here
        self.removed: set[str] = set()           # hex ids of groups removed here
        self.committed: set[str] = set()         # hex ids of groups committed here
        self.log: deque = deque(maxlen=LOG_SIZE)  # recent events, newest last, for debugging
        self._idle_periods = 0                       # numbers each time a worker becomes idle
        self._idle_period: dict[bytes, int] = {}     # idle worker -> the number of its period
        self._idle_seen: dict[bytes, tuple] = {}     # idle worker -> (period, first tick seeing it)
        self.envs = EnvWorkers()                     # each worker's runtime_env (env_workers.py)

    # -- events --------------------------------------------------------------
    def request_lease(self, owner: Any, req: int, demand: dict, name: str, strategy: tuple = (),
                      spilled: bool = False, env: Any = None) -> list:
        self.log.append(("request", name, req))
        group = res.group_of(demand)
        if group is not None and group in self.removed:
            return [Refuse(owner, req, _removed(group), True)]
        where = self.view.choose(demand, strategy, spilled, self.total, self.available)
        if type(where) is Refusal:
            return [Refuse(owner, req, where.why)]
        if where is not HERE:
            self.log.append(("spill", req, where.node_id))
            return [Spill(owner, req, where.address)]
        out = self._check_feasible(owner, name, demand)
        self.queue.append(_Request(owner, req, demand, name, None, not strategy and not spilled, env=env))
        return out + self._schedule()

    def update_cluster(self, nodes: tuple) -> list:
        """The GCS's view of every live node: queued requests may go where they fit now."""
        self.view.update(nodes)
        return self._schedule() if self.queue else []

    def place_actor(self, actor_id: bytes, demand: dict, placement: dict, name: str, env: Any = None) -> list:
        self.log.append(("place actor", actor_id, name))
        out = self._check_feasible(None, name, placement)
        self.queue.append(_Request(None, 0, demand, name, actor_id, env=env))
        return out + self._schedule()

    def worker_started(self, n: int = 1, env: Any = None) -> None:
        self.starting += n
        self.envs.started(env, n)

    def worker_registered(self, worker_id: bytes, env: Any = None) -> list:
        self.log.append(("registered", worker_id))
        self.starting = max(0, self.starting - 1)
        self.envs.registered(worker_id, env)
        self.workers[worker_id] = None
        self._to_idle(worker_id)
        return self._schedule()

    def worker_failed_to_start(self, env: Any = None) -> list:
        self.log.append(("failed to start",))
        self.starting = max(0, self.starting - 1)
        self.envs.start_ended(env)
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
            self.envs.forget(lease.worker_id)
            out.append(Kill(lease.worker_id))
        else:
            self.workers[lease.worker_id] = None
            self._to_idle(lease.worker_id)
        return out + self._schedule()

    def worker_died(self, worker_id: bytes) -> list:
        self.log.append(("died", worker_id))
        lease_id = self.workers.pop(worker_id, None)
        self.envs.forget(worker_id)
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
                self._drop_idle(w)
                del seen[w]
                out.append(Kill(w))
                surplus -= 1
        return out

    def _drop_idle(self, w: bytes) -> None:
        self.idle.remove(w)
        del self.workers[w]
        self.envs.forget(w)
        self._idle_period.pop(w, None)

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

    # -- placement groups --------------------------------------------------------
    def prepare_bundles(self, group: bytes, bundles: dict) -> list:
        """Hold `bundles` ({index: resources}) of `group` here once they all fit (queued
        until then); Prepared(group) says they are held. Asking again changes nothing."""
        self.log.append(("prepare", group, tuple(bundles)))
        if group in self.groups:
            return [Prepared(group)]
        if any(r.bundles is not None and r.bundles[0] == group for r in self.queue):
            return []
        held: dict = {}
        for b in bundles.values():
            res.add(held, b)
        self.queue.append(_Request(None, 0, held, f"placement group {group.hex()}", None,
                                   bundles=(group, dict(bundles))))
        return self._schedule()

    def commit_bundles(self, group: bytes) -> list:
        """The held bundles become resources of their own names (nothing when not prepared)."""
        g = self.groups.get(group)
        if g is None or g.committed:
            return []
        self.log.append(("commit", group))
        for index, bundle in g.bundles.items():
            res.add(g.committed, res.bundle_resources(group.hex(), index, bundle))
        res.add(self.total, g.committed)
        res.add(self.available, g.committed)
        self.committed.add(group.hex())
        return self._schedule()

    def return_bundles(self, group: bytes, removed: bool = True) -> list:
        """Undoes prepare and commit: the group's leases end (workers killed), its resources
        go back to the node; when it was `removed` (not only placed again elsewhere), its
        queued requests are refused, as are later ones."""
        self.log.append(("return bundles", group, removed))
        hex_id = group.hex()
        if removed:
            self.removed.add(hex_id)
        self.committed.discard(hex_id)
        out: list = []
        keep: deque[_Request] = deque()
        for r in self.queue:
            if r.bundles is not None and r.bundles[0] == group:
                continue
            if removed and r.bundles is None and res.group_of(r.demand) == hex_id:
                if r.actor_id is None:
                    out.append(Refuse(r.owner, r.req, _removed(hex_id), True))
                continue
            keep.append(r)
        self.queue = keep
        for lease in [x for x in self.leases.values() if res.group_of(x.demand) == hex_id]:
            out += self.return_lease(lease.lease_id, kill_worker=True)
        g = self.groups.pop(group, None)
        if g is not None:
            for ids in g.gpus.values():
                self.free_gpus.extend(ids)
            self.free_gpus.sort()
            for k in g.committed:
                self.total.pop(k, None)
                self.available.pop(k, None)
            res.add(self.available, g.held)
        return out + self._schedule()

    # -- the decision --------------------------------------------------------
    def _check_feasible(self, owner: Any, name: str, demand: dict) -> list:
        if res.group_of(demand) is not None or self.view.feasible_anywhere(demand, self.total):
            return []  # a group's resources appear once it is committed on its node
        return [Infeasible(owner, name, demand)]

    def _schedule(self) -> list:
        out: list = []
        waiting: deque[_Request] = deque()
        need: dict[Any, int] = {}      # runtime_env key -> requests that fit but lack a worker
        room: dict | None = None       # what is left once those requests would run
        blocked_on_resources = False
        while self.queue:
            r = self.queue.popleft()
            if not res.fits(r.demand, self.available):
                peer = self.view.free_peer(r.demand) if r.movable and self.view.peers else None
                if peer is not None:
                    self.view.take(peer, r.demand)
                    self.log.append(("spill", r.req, peer.node_id))
                    out.append(Spill(r.owner, r.req, peer.address))
                    continue
                waiting.append(r)
                group = res.group_of(r.demand)  # a group not committed here: leases cannot help
                blocked_on_resources |= group is None or group in self.committed
                continue
            if r.bundles is not None:  # a placement group's reservation: no worker
                res.subtract(self.available, r.demand)
                g = self.groups[r.bundles[0]] = _Group(r.bundles[1], dict(r.demand))
                for index, bundle in r.bundles[1].items():
                    n = int(bundle.get("GPU", 0))
                    g.gpus[index] = self.free_gpus[:n]
                    del self.free_gpus[:n]
                    g.gpu_home.update(dict.fromkeys(g.gpus[index], index))
                out.append(Prepared(r.bundles[0]))
                continue
            worker_id = self.envs.take(self.idle, r.env)
            if worker_id is None:
                waiting.append(r)
                if room is None:
                    room = dict(self.available)
                if res.fits(r.demand, room):  # only workers that could run at once are started
                    res.subtract(room, r.demand)
                    need[r.env] = need.get(r.env, 0) + 1
                continue
            del self._idle_period[worker_id]
            lease_id = self._new_id()
            n_gpus = int(r.demand.get("GPU", 0))
            if n_gpus:
                gpus = tuple(self.free_gpus[:n_gpus])
                del self.free_gpus[:n_gpus]
            else:
                gpus = self._bundle_gpus(r.demand) if self.groups else ()
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
            spawn = min(n - self.envs.starting.get(env, 0), self.max_starting - self.starting)
            if spawn > 0:
                self.worker_started(spawn, env)
                out.append(Spawn(spawn, env))
                for w in self.envs.stale(self.idle, env, spawn):  # would wait idle: end them
                    self._drop_idle(w)
                    out.append(Kill(w))
        if blocked_on_resources and any(lease.actor_id is None for lease in self.leases.values()):
            out.append(RevokeIdle())
        return out

    def _release(self, lease: _Lease) -> None:
        demand = dict(lease.demand)
        if lease.blocked and "CPU" in demand:
            demand.pop("CPU")
        res.add(self.available, demand)
        if not lease.gpu_ids:
            return
        group = res.group_of(lease.demand)
        g = self.groups.get(bytes.fromhex(group)) if group is not None else None
        if g is not None:  # back to the bundles they belong to
            for i in lease.gpu_ids:
                g.gpus[g.gpu_home[i]].append(i)
            return
        self.free_gpus.extend(lease.gpu_ids)
        self.free_gpus.sort()

    def _bundle_gpus(self, demand: dict) -> tuple:
        """GPU ids for a lease in a placement group: from its bundle (else any of the group's
        bundles here, for a task asking for any bundle)."""
        group = res.group_of(demand)
        n = int(demand.get(f"GPU_group_{group}", 0)) if group is not None else 0
        g = self.groups.get(bytes.fromhex(group)) if n else None
        if g is None:
            return ()
        mine = [i for i in g.gpus if f"GPU_group_{i}_{group}" in demand]
        taken: list = []
        for index in mine + [i for i in g.gpus if i not in mine]:
            ids = g.gpus[index]
            k = min(n - len(taken), len(ids))
            taken += ids[:k]
            del ids[:k]
        return tuple(taken)

    def statistics(self) -> dict:
        return {"total": dict(self.total), "available": dict(self.available),
                "workers": len(self.workers), "idle_workers": len(self.idle),
                "starting_workers": self.starting, "leases": len(self.leases),
                "actor_workers": sum(1 for lease in self.leases.values() if lease.actor_id),
                "pending_requests": len(self.queue), "peers": len(self.view.peers),
                "placement_groups": len(self.groups),
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
