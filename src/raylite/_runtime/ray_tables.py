"""Ray's GCS tables (jobs, actors) as raylite's state records, for the ray runtime's state().

    RayState.state() ─► jobs(ray, here) ─► the GCS's job table   ─► JobRecord per Ray job
                     ─► actors(ray)     ─► the GCS's actor table ─► ActorRecord per actor, and a
                                                                    WorkerRecord per live one (its
                                                                    pid and node: list_actors')
Both are read the way Ray's own `ray._private.state` reads them (its GlobalStateAccessor
and the protobufs it returns), which needs no dashboard and no `ray[default]`: Ray's state
API (`ray.util.state`) needs both. The accessor and the protobuf fields are Ray 2.60's
(`raylite[ray]` pins it); Ray's public `ray._private.state.actors()` drops the namespace,
so the table is read here.
"""
from __future__ import annotations

from typing import Any

# Ray's actor states as raylite's records name them (schema.ACTOR_STATE maps them back)
_ACTOR_STATE = {"DEPENDENCIES_UNREADY": "PENDING", "PENDING_CREATION": "PENDING"}


def _accessor() -> Any:
    from ray._private import state

    return state.state._connect_and_get_accessor()


def jobs(here: str, here_namespace: str) -> tuple:
    """A JobRecord per Ray job (`here`: this driver's job id, reported in `here_namespace`)."""
    from ray.core.generated import gcs_pb2

    from .._core.records import JobRecord

    table = _accessor().get_job_table(skip_submission_job_info_field=True,
                                      skip_is_running_tasks_field=True)
    out = []
    for raw in table:
        j = gcs_pb2.JobTableData.FromString(raw)
        job_id = j.job_id.hex()
        out.append(JobRecord(job_id, here_namespace if job_id == here else j.config.ray_namespace,
                             j.driver_pid, not j.is_dead))
    return tuple(out)


def actors() -> tuple[tuple, tuple]:
    """(ActorRecords, WorkerRecords of the live ones) from the GCS's actor table."""
    from ray.core.generated import gcs_pb2

    from .._core.records import ActorRecord, WorkerRecord

    records, hosts = [], []
    for raw in _accessor().get_actor_table(None, None):
        a = gcs_pb2.ActorTableData.FromString(raw)
        state = gcs_pb2.ActorTableData.ActorState.Name(a.state)
        actor_id, node = a.actor_id.hex(), a.address.node_id.hex()
        address = f"{a.address.ip_address}:{a.address.port}" if a.address.port else None
        records.append(ActorRecord(actor_id, a.class_name, a.name or None, a.ray_namespace,
                                   _ACTOR_STATE.get(state, state), address, a.num_restarts,
                                   a.is_detached, _death(a) if state == "DEAD" else None))
        if state == "ALIVE" and a.pid:
            hosts.append(WorkerRecord(a.address.worker_id.hex(), node, a.pid, "ACTOR", None,
                                      actor_id))
    return tuple(records), tuple(hosts)


def _death(a: Any) -> str | None:
    """The first line of why Ray says the actor died."""
    which = a.death_cause.WhichOneof("context") if a.HasField("death_cause") else None
    message = getattr(getattr(a.death_cause, which), "error_message", "") if which else ""
    return message.partition("\n")[0] or None
