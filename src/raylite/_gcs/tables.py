"""The GCS tables: jobs, nodes, actors, named actors, KV (pure, no I/O).

    register_actor ──► PENDING ──actor_started──► ALIVE ──actor_died──► RESTARTING ─► ALIVE
                          │   (actor_placed: which          (restarts left; placed again)
                          │    node and worker run it)
                          └──────── failed __init__ / killed / owner gone ──────► DEAD

An entry's `death` is the pickled error that explains its latest death (kept while
it restarts, so calls lost in that death can say why), and `reason` that death in one
line of text (the tables never unpickle what a worker sent). Fate sharing: `spec.owner`
is the address of the process that created the actor; when that process is gone,
`owned_by` names the non-detached actors to kill (a driver's go with its job too).
Each placement is one incarnation, numbered by `restarts`: a report about an older
incarnation (its worker started or was placed after the actor restarted) is stale
and changes nothing.

Owns the authoritative job, node and actor state, the (namespace, name) index and
the KV; the service (service.py) keeps the connections and the waiters. Given a
Storage (storage.py), every change is written through to it as it happens, and
`GcsTables.load(storage)` rebuilds the same tables from it; the GCS service always
gives one. Without one (local mode's actor bookkeeping, whose deaths are exception
objects, not pickled errors) nothing is written but the KV, kept in memory:

    table         key        value (pickled)
    jobs          job id     (namespace, pid, alive, node id)
    nodes         node id    (address, resources, hostname, alive, is_head; labels and what
                             is free as it last reported, not stored)
    actor_specs   actor id   the ActorSpec (written once)
    actors        actor id   (state, address, worker id, restarts, death, reason, node id,
                             worker address)
    kv            key        the value, as given
    placement_groups  group id   (spec, state, nodes), written by groups.py

Placement groups are `groups` (groups.py, pure), written through to the same storage
(table placement_groups). `state()` answers a state request with records of every node, job, actor and
placement group;
`statistics()` gives the counts; `log` keeps the latest events for debugging.
"""
from __future__ import annotations

import pickle
from collections import deque
from typing import Any

from .._core.records import ActorRecord, JobRecord, NodeRecord, StateSnapshot
from .groups import Groups
from .storage import MemoryStorage, Storage

LOG_SIZE = 256


class JobInfo:
    __slots__ = ("job_id", "namespace", "pid", "alive", "node_id")

    def __init__(self, job_id: bytes, namespace: str, pid: int, node_id: bytes | None = None):
        self.job_id, self.namespace, self.pid, self.alive = job_id, namespace, pid, True
        self.node_id = node_id   # the node whose daemon the driver connected to


class NodeInfo:
    __slots__ = ("node_id", "address", "resources", "hostname", "alive", "is_head", "labels",
                 "available")

    def __init__(self, node_id: bytes, address: str, resources: dict, hostname: str, is_head: bool,
                 labels: dict | None = None):
        self.node_id, self.address, self.resources = node_id, address, dict(resources)
        self.hostname, self.alive, self.is_head = hostname, True, is_head
        self.labels = {"ray.io/node-id": node_id.hex(), **(labels or {})}
        self.available = dict(resources)   # as the node last reported (NodeResources)


class ActorEntry:
    __slots__ = ("spec", "state", "address", "worker_id", "restarts", "death", "reason",
                 "node_id", "worker_address")

    def __init__(self, spec: Any):
        self.spec = spec
        self.state = "PENDING"
        self.address: str | None = None          # where callers reach it, once ALIVE
        self.worker_id: bytes | None = None      # the worker hosting it (from its placement)
        self.restarts = 0
        self.death: bytes | None = None
        self.reason: str | None = None
        self.node_id: bytes | None = None        # the node it was placed on
        self.worker_address: str | None = None   # its worker's address, even during __init__


class GcsTables:
    def __init__(self, storage: Storage | None = None) -> None:
        self.persist = storage is not None   # write every change through to `storage`
        self.storage = storage if storage is not None else MemoryStorage()
        self.jobs: dict[bytes, JobInfo] = {}
        self.nodes: dict[bytes, NodeInfo] = {}
        self.actors: dict[bytes, ActorEntry] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.groups = Groups(self.storage if self.persist else None)  # placement groups
        self.log: deque = deque(maxlen=LOG_SIZE)

    # -- jobs and nodes ------------------------------------------------------
    def add_job(self, job_id: bytes, namespace: str, pid: int, node_id: bytes | None = None) -> None:
        self.jobs[job_id] = JobInfo(job_id, namespace, pid, node_id)
        self._save_job(self.jobs[job_id])
        self.log.append(("job", job_id, namespace))

    def finish_job(self, job_id: bytes) -> list[bytes]:
        """Marks a job finished; returns its non-detached live actors, to be killed."""
        job = self.jobs.get(job_id)
        if job is not None and job.alive:
            job.alive = False
            self._save_job(job)
            self.log.append(("job finished", job_id))
        return [a for a, e in self.actors.items()
                if e.spec.job_id == job_id and not e.spec.detached and e.state != "DEAD"]

    def add_node(self, node_id: bytes, address: str, resources: dict, hostname: str,
                 is_head: bool = False, labels: dict | None = None) -> None:
        self.nodes[node_id] = NodeInfo(node_id, address, resources, hostname, is_head, labels)
        self._save_node(self.nodes[node_id])
        self.log.append(("node", node_id, address))

    def remove_node(self, node_id: bytes) -> None:
        node = self.nodes.get(node_id)
        if node is not None and node.alive:
            node.alive = False
            self._save_node(node)
            self.log.append(("node gone", node_id))

    def node_available(self, node_id: bytes, available: dict) -> bool:
        """A live node's report of what is free on it; False when it changed nothing."""
        node = self.nodes.get(node_id)
        if node is None or not node.alive or node.available == available:
            return False
        node.available = dict(available)
        return True

    def cluster_view(self) -> tuple:
        """Every live node as (id hex, address, total, available, labels): ClusterView's."""
        return tuple((n.node_id.hex(), n.address, dict(n.resources), dict(n.available),
                      dict(n.labels)) for n in self.nodes.values() if n.alive)

    def jobs_on_node(self, node_id: bytes) -> list[bytes]:
        return [j for j, info in self.jobs.items() if info.alive and info.node_id == node_id]

    def actors_on_node(self, node_id: bytes) -> list[bytes]:
        """The actors placed on `node_id` that are not dead (starting or alive there)."""
        return [a for a, e in self.actors.items() if e.node_id == node_id and e.state != "DEAD"]

    # -- actors --------------------------------------------------------------
    def register_actor(self, spec: Any, get_if_exists: bool) -> tuple[bytes | None, Any, str | None]:
        """Returns (actor id, meta, error). With get_if_exists, an existing live actor's id."""
        if spec.actor_id in self.actors:
            return None, None, f"An actor with the id {spec.actor_id.hex()} already exists."
        if spec.name:
            key = (spec.namespace, spec.name)
            existing = self.names.get(key)
            if existing is not None and self.actors[existing].state != "DEAD":
                if get_if_exists:
                    return existing, self.actors[existing].spec.meta, None
                return None, None, (f"An actor named {spec.name!r} already exists in namespace "
                                    f"{spec.namespace!r}. Use get_if_exists=True to reuse it, "
                                    "or another name.")
            self.names[key] = spec.actor_id
        entry = self.actors[spec.actor_id] = ActorEntry(spec)
        if self.persist:
            self.storage.put("actor_specs", spec.actor_id, pickle.dumps(spec, 5))
        self._save_actor(entry)
        self.log.append(("register", spec.actor_id, spec.name))
        return spec.actor_id, spec.meta, None

    def actor_assigned(self, actor_id: bytes, node_id: bytes) -> None:
        """The GCS asked `node_id` to start the actor's current incarnation."""
        entry = self.actors.get(actor_id)
        if entry is not None and entry.state != "DEAD":
            entry.node_id = node_id
            self._save_actor(entry)
            self.log.append(("assigned", actor_id, entry.restarts, node_id))

    def actor_placed(self, actor_id: bytes, restarts: int, node_id: bytes, worker_id: bytes,
                     worker_address: str) -> bool:
        """A node started this incarnation's worker; False when stale (dead, or restarted since)."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.state not in ("PENDING", "RESTARTING") or \
                entry.restarts != restarts or entry.node_id not in (None, node_id):
            return False
        entry.node_id, entry.worker_id, entry.worker_address = node_id, worker_id, worker_address
        self._save_actor(entry)
        self.log.append(("placed", actor_id, restarts, worker_id))
        return True

    def actor_started(self, actor_id: bytes, worker_id: bytes, address: str,
                      restarts: int | None = None) -> bool:
        """Its __init__ finished; False when stale (`restarts` names the incarnation)."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.state in ("DEAD", "ALIVE") or \
                (restarts is not None and restarts != entry.restarts):
            return False
        entry.state, entry.worker_id, entry.address = "ALIVE", worker_id, address
        entry.worker_address = address
        self._save_actor(entry)
        self.log.append(("started", actor_id, restarts, address))
        return True

    def actor_died(self, actor_id: bytes, death: bytes | None, may_restart: bool,
                   reason: str | None = None) -> str:
        """Records a death (`reason`: why, in one line); returns the new state (RESTARTING
        when restarts are left)."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.state == "DEAD":
            return "DEAD"
        entry.reason = reason
        max_restarts = entry.spec.max_restarts
        entry.address = entry.worker_id = entry.worker_address = entry.node_id = None
        entry.death = death
        if may_restart and (max_restarts < 0 or entry.restarts < max_restarts):
            entry.restarts += 1
            entry.state = "RESTARTING"
        else:
            entry.state = "DEAD"
            name_key = (entry.spec.namespace, entry.spec.name)
            if entry.spec.name and self.names.get(name_key) == actor_id:
                del self.names[name_key]
        self._save_actor(entry)
        self.log.append(("died", actor_id, entry.state))
        return entry.state

    def owned_by(self, address: str) -> list[bytes]:
        """The live non-detached actors whose owner (creator) is the process at `address`:
        they share its fate (Ray binds such an actor's lifetime to its owner's)."""
        if not address:
            return []
        return [a for a, e in self.actors.items()
                if e.spec.owner == address and not e.spec.detached and e.state != "DEAD"]

    def actor_on_worker(self, worker_id: bytes) -> bytes | None:
        for actor_id, e in self.actors.items():
            if e.worker_id == worker_id and e.state != "DEAD":
                return actor_id
        return None

    def lookup(self, actor_id: bytes | None, name: str | None, namespace: str | None) -> ActorEntry | None:
        if actor_id is None:
            actor_id = self.names.get((namespace or "", name or ""))
            if actor_id is None:
                return None
        return self.actors.get(actor_id)

    # -- KV --------------------------------------------------------------------
    def kv_put(self, key: bytes, value: bytes, overwrite: bool = True) -> bool:
        """Stores `value`; False (nothing changed) when the key exists and not `overwrite`."""
        if not overwrite and self.storage.get("kv", key) is not None:
            return False
        self.storage.put("kv", key, value)
        return True

    def kv_get(self, key: bytes) -> bytes | None:
        return self.storage.get("kv", key)

    def kv_delete(self, key: bytes) -> bool:
        return self.storage.delete("kv", key)

    def kv_keys(self, prefix: bytes) -> list[bytes]:
        return [k for k, _ in self.storage.scan("kv", prefix)]

    # -- storage -----------------------------------------------------------------
    def _save_job(self, j: JobInfo) -> None:
        if self.persist:
            self.storage.put("jobs", j.job_id,
                             pickle.dumps((j.namespace, j.pid, j.alive, j.node_id)))

    def _save_node(self, n: NodeInfo) -> None:
        if self.persist:
            self.storage.put("nodes", n.node_id, pickle.dumps(
                (n.address, n.resources, n.hostname, n.alive, n.is_head)))

    def _save_actor(self, e: ActorEntry) -> None:
        if self.persist:
            self.storage.put("actors", e.spec.actor_id, pickle.dumps(
                (e.state, e.address, e.worker_id, e.restarts, e.death, e.reason, e.node_id,
                 e.worker_address)))

    @classmethod
    def load(cls, storage: Storage) -> "GcsTables":
        """The tables as `storage` holds them (a GCS coming back after a restart)."""
        t = cls.__new__(cls)
        t.storage, t.persist, t.log = storage, True, deque(maxlen=LOG_SIZE)
        t.jobs, t.nodes, t.actors, t.names = {}, {}, {}, {}
        t.groups = Groups.load(storage)
        for job_id, value in storage.scan("jobs"):
            namespace, pid, alive, node_id = pickle.loads(value)
            job = t.jobs[job_id] = JobInfo(job_id, namespace, pid, node_id)
            job.alive = alive
        for node_id, value in storage.scan("nodes"):
            address, resources, hostname, alive, is_head = pickle.loads(value)
            node = t.nodes[node_id] = NodeInfo(node_id, address, resources, hostname, is_head)
            node.alive = alive
        states = dict(storage.scan("actors"))
        for actor_id, value in storage.scan("actor_specs"):
            e = t.actors[actor_id] = ActorEntry(pickle.loads(value))
            (e.state, e.address, e.worker_id, e.restarts, e.death, e.reason, e.node_id,
             e.worker_address) = pickle.loads(states[actor_id])
            if e.spec.name and e.state != "DEAD":
                t.names[(e.spec.namespace, e.spec.name)] = actor_id
        t.log.append(("loaded", len(t.jobs), len(t.nodes), len(t.actors)))
        return t

    def state(self) -> StateSnapshot:
        """Every node (what is free on it as it last reported; the asking node's own
        scheduler record, overlaid, says what is free there now), every job and every actor."""
        nodes = tuple(NodeRecord(n.node_id.hex(), n.address, n.hostname, n.alive, n.is_head,
                                 dict(n.resources), dict(n.available) if n.alive else {},
                                 dict(n.labels))
                      for n in self.nodes.values())
        jobs = tuple(JobRecord(j.job_id.hex(), j.namespace, j.pid, j.alive)
                     for j in self.jobs.values())
        actors = tuple(ActorRecord(a.hex(), e.spec.meta.class_name, e.spec.name, e.spec.namespace,
                                   e.state, e.address, e.restarts, e.spec.detached, e.reason)
                       for a, e in self.actors.items())
        return StateSnapshot("gcs", nodes=nodes, jobs=jobs, actors=actors,
                             placement_groups=self.groups.state())

    def statistics(self) -> dict:
        states: dict[str, int] = {}
        for e in self.actors.values():
            states[e.state] = states.get(e.state, 0) + 1
        return {"jobs": sum(1 for j in self.jobs.values() if j.alive),
                "nodes": sum(1 for n in self.nodes.values() if n.alive),
                "actors": states, "named_actors": len(self.names),
                "kv_keys": len(self.storage.scan("kv")), **self.groups.statistics()}
