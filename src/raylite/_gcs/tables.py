"""The GCS tables: jobs, nodes, actors, named actors, KV (pure, no I/O).

    register_actor ──► PENDING ──actor_started──► ALIVE ──actor_died──► RESTARTING ─► ALIVE
                          │                          │                     (restarts left)
                          └──────── failed __init__ / killed / owner gone ──────► DEAD

An entry's `death` is the pickled error that explains its latest death (kept while
it restarts, so calls lost in that death can say why), and `reason` that death in one
line of text (the tables never unpickle what a worker sent). Fate sharing: `spec.owner`
is the address of the process that created the actor; when that process is gone,
`owned_by` names the non-detached actors to kill (a driver's go with its job too).

Owns the authoritative actor state and the (namespace, name) index; the
server keeps the sockets and the waiters. `state()` answers a state request with
records of every node, job and actor; `statistics()` gives the counts.
"""
from __future__ import annotations

from typing import Any

from .._core.records import ActorRecord, JobRecord, NodeRecord, StateSnapshot


class JobInfo:
    __slots__ = ("job_id", "namespace", "pid", "alive")

    def __init__(self, job_id: bytes, namespace: str, pid: int):
        self.job_id, self.namespace, self.pid, self.alive = job_id, namespace, pid, True


class NodeInfo:
    __slots__ = ("node_id", "address", "resources", "hostname", "alive", "is_head")

    def __init__(self, node_id: bytes, address: str, resources: dict, hostname: str, is_head: bool):
        self.node_id, self.address, self.resources = node_id, address, dict(resources)
        self.hostname, self.alive, self.is_head = hostname, True, is_head


class ActorEntry:
    __slots__ = ("spec", "state", "address", "worker_id", "restarts", "death", "reason")

    def __init__(self, spec: Any):
        self.spec = spec
        self.state = "PENDING"
        self.address: str | None = None
        self.worker_id: bytes | None = None
        self.restarts = 0
        self.death: bytes | None = None
        self.reason: str | None = None


class GcsTables:
    def __init__(self) -> None:
        self.jobs: dict[bytes, JobInfo] = {}
        self.nodes: dict[bytes, NodeInfo] = {}
        self.actors: dict[bytes, ActorEntry] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.kv: dict[bytes, bytes] = {}

    # -- jobs and nodes ------------------------------------------------------
    def add_job(self, job_id: bytes, namespace: str, pid: int) -> None:
        self.jobs[job_id] = JobInfo(job_id, namespace, pid)

    def finish_job(self, job_id: bytes) -> list[bytes]:
        """Marks a job finished; returns its non-detached live actors, to be killed."""
        job = self.jobs.get(job_id)
        if job is not None:
            job.alive = False
        return [a for a, e in self.actors.items()
                if e.spec.job_id == job_id and not e.spec.detached and e.state != "DEAD"]

    def add_node(self, node_id: bytes, address: str, resources: dict, hostname: str,
                 is_head: bool = False) -> None:
        self.nodes[node_id] = NodeInfo(node_id, address, resources, hostname, is_head)

    def remove_node(self, node_id: bytes) -> None:
        node = self.nodes.get(node_id)
        if node is not None:
            node.alive = False

    # -- actors --------------------------------------------------------------
    def register_actor(self, spec: Any, get_if_exists: bool) -> tuple[bytes | None, Any, str | None]:
        """Returns (actor id, meta, error). With get_if_exists, an existing live actor's id."""
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
        self.actors[spec.actor_id] = ActorEntry(spec)
        return spec.actor_id, spec.meta, None

    def actor_started(self, actor_id: bytes, worker_id: bytes, address: str) -> None:
        entry = self.actors.get(actor_id)
        if entry is not None and entry.state != "DEAD":
            entry.state, entry.worker_id, entry.address = "ALIVE", worker_id, address

    def actor_died(self, actor_id: bytes, death: bytes | None, may_restart: bool,
                   reason: str | None = None) -> str:
        """Records a death (`reason`: why, in one line); returns the new state (RESTARTING
        when restarts are left)."""
        entry = self.actors.get(actor_id)
        if entry is None or entry.state == "DEAD":
            return "DEAD"
        entry.reason = reason
        max_restarts = entry.spec.max_restarts
        if may_restart and (max_restarts < 0 or entry.restarts < max_restarts):
            entry.restarts += 1
            entry.state, entry.address, entry.worker_id, entry.death = "RESTARTING", None, None, death
            return "RESTARTING"
        entry.state, entry.address, entry.worker_id, entry.death = "DEAD", None, None, death
        name_key = (entry.spec.namespace, entry.spec.name)
        if entry.spec.name and self.names.get(name_key) == actor_id:
            del self.names[name_key]
        return "DEAD"

    def owned_by(self, address: str) -> list[bytes]:
        """The live non-detached actors whose owner (creator) is the process at `address`:
        they share its fate (Ray binds such an actor's lifetime to its owner's)."""
        if not address:
            return []
        return [a for a, e in self.actors.items()
                if e.spec.owner == address and not e.spec.detached and e.state != "DEAD"]

    def actor_on_worker(self, worker_id: bytes) -> bytes | None:
        for actor_id, e in self.actors.items():
            if e.worker_id == worker_id and e.state in ("PENDING", "ALIVE"):
                return actor_id
        return None

    def lookup(self, actor_id: bytes | None, name: str | None, namespace: str | None) -> ActorEntry | None:
        if actor_id is None:
            actor_id = self.names.get((namespace or "", name or ""))
            if actor_id is None:
                return None
        return self.actors.get(actor_id)

    def state(self) -> StateSnapshot:
        """Every node (the GCS hears no usage reports: a live node's record says all of its
        resources are available; the node's own scheduler record, overlaid, says what is),
        every job and every actor."""
        nodes = tuple(NodeRecord(n.node_id.hex(), n.address, n.hostname, n.alive, n.is_head,
                                 dict(n.resources), dict(n.resources) if n.alive else {})
                      for n in self.nodes.values())
        jobs = tuple(JobRecord(j.job_id.hex(), j.namespace, j.pid, j.alive)
                     for j in self.jobs.values())
        actors = tuple(ActorRecord(a.hex(), e.spec.meta.class_name, e.spec.name, e.spec.namespace,
                                   e.state, e.address, e.restarts, e.spec.detached, e.reason)
                       for a, e in self.actors.items())
        return StateSnapshot("gcs", nodes=nodes, jobs=jobs, actors=actors)

    def statistics(self) -> dict:
        states: dict[str, int] = {}
        for e in self.actors.values():
            states[e.state] = states.get(e.state, 0) + 1
        return {"jobs": sum(1 for j in self.jobs.values() if j.alive),
                "nodes": sum(1 for n in self.nodes.values() if n.alive),
                "actors": states, "named_actors": len(self.names), "kv_keys": len(self.kv)}
