"""get_runtime_context(): who and where the calling code is (job, node, task, actor).

Ray's RuntimeContext, method for method. Ids come as hex strings from the
get_*_id() methods and as Ray's typed ids (JobID, NodeID, TaskID, ActorID)
from the older properties. Each call asks the current runtime, so one
context object stays right as the code moves between tasks.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

from . import _config
from ._ids import ActorID, JobID, NodeID, PlacementGroupID, TaskID
from ._runtime import context, require


class RuntimeContext:
    """A live view: each getter asks the current runtime."""

    def _info(self) -> Any:
        return require().context()

    # -- ids -------------------------------------------------------------------
    def get_job_id(self) -> str:
        return self._info().job_id

    def get_node_id(self) -> str:
        return self._info().node_id

    def get_worker_id(self) -> str:
        return self._info().worker_id

    def get_task_id(self) -> str | None:
        """The running task's or actor call's id; None in the driver (and in an actor's
        own threads outside a call)."""
        return self._info().task_id

    def get_actor_id(self) -> str | None:
        return self._info().actor_id

    def get_actor_name(self) -> str | None:
        return self._info().actor_name

    def get_placement_group_id(self) -> str | None:
        """The id (hex) of the placement group the calling task or actor runs in; None in a
        driver or outside any group."""
        s = context.current()
        return s.placement[0].hex() if s is not None and s.placement is not None else None

    @property
    def current_placement_group_id(self) -> Any:
        """The same as a PlacementGroupID (Ray's older property), or None."""
        hex_id = self.get_placement_group_id()
        return PlacementGroupID.from_hex(hex_id) if hex_id is not None else None

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether the tasks this one creates run in its placement group (True in a driver,
        as Ray says)."""
        info = self._info()
        if info.task_id is None and info.actor_id is None:
            return True
        s = context.current()
        return bool(s is not None and s.placement is not None and s.placement[2])

    @property
    def job_id(self) -> JobID:
        """The job id as a JobID (Ray's older property; get_job_id() gives the hex)."""
        return JobID(bytes.fromhex(self.get_job_id()))

    @property
    def node_id(self) -> NodeID:
        return NodeID(bytes.fromhex(self.get_node_id()))

    @property
    def task_id(self) -> TaskID | None:
        task = self.get_task_id()
        return TaskID(bytes.fromhex(task)) if task else None

    @property
    def actor_id(self) -> ActorID | None:
        actor = self.get_actor_id()
        return ActorID(bytes.fromhex(actor)) if actor else None

    # -- the running task ------------------------------------------------------
    def get_task_name(self) -> str | None:
        """The task's name: its options(name=...), else "f" for a task of function f and
        "Cls.method" for an actor call; None in the driver."""
        return self._info().task_name

    def get_task_function_name(self) -> str | None:
        """The function the task runs, as "module.f" or "module.Cls.method"; None in the
        driver."""
        return self._info().task_function_name

    def is_canceled(self) -> bool:
        """Whether raylite.cancel() was called on the running task. A running actor call
        is not interrupted by cancel(): it can check this and stop early. RuntimeError in
        the driver and in an async actor (cancel() stops an async call at its next await)."""
        import asyncio

        info = self._info()
        if info.task_id is None:
            raise RuntimeError("is_canceled() can only be called inside a task or actor call, "
                               "not in the driver.")
        if info.actor_id is not None and asyncio._get_running_loop() is not None:  # async actor
            raise RuntimeError("is_canceled() is not supported in async actors: cancel() "
                               "raises asyncio.CancelledError at the call's next await instead.")
        return require().is_cancelled(bytes.fromhex(info.task_id))

    # -- resources -------------------------------------------------------------
    def get_assigned_resources(self) -> dict:
        return dict(self._info().assigned_resources)

    def get_accelerator_ids(self) -> dict:
        return {"GPU": [str(i) for i in self._info().gpu_ids]}

    def get_resource_ids(self) -> dict:
        """Deprecated in Ray: the same as get_accelerator_ids()."""
        warnings.warn("get_resource_ids() is deprecated: use get_accelerator_ids().",
                      DeprecationWarning, stacklevel=2)
        return self.get_accelerator_ids()

    # -- the cluster -----------------------------------------------------------
    def get_node_labels(self) -> dict:
        """The labels of the node the calling code runs on (`raylite start --labels`, and
        the node's id under "ray.io/node-id"), as in nodes()."""
        node = self.get_node_id()
        for n in require().nodes():
            if n.get("NodeID") == node:
                return dict(n.get("Labels") or {})
        return {}

    @property
    def namespace(self) -> str:
        return self._info().namespace

    def get_namespace(self) -> str:
        return self.namespace

    @property
    def gcs_address(self) -> str:
        """The address of the cluster this process is connected to ("local" in local mode)."""
        return require().info().address

    def get_session_name(self) -> str:
        """The name of the cluster's session directory (local mode: "session_local_<pid>",
        it has none)."""
        session = require().info().session_dir
        return os.path.basename(session.rstrip("/")) if session else f"session_local_{os.getpid()}"

    def get_temp_dir(self) -> str:
        """The root of this node's session directories (RAYLITE_TEMP_DIR, default
        /tmp/raylite_<uid>)."""
        session = require().info().session_dir
        return os.path.dirname(session.rstrip("/")) if session else _config.from_env().temp_dir

    @property
    def runtime_env(self) -> dict:
        """The runtime_env the calling code runs with, as given: in a task or actor its own
        keys over the job's (env_vars merged), in the driver what init() was given."""
        import copy

        info = self._info()
        if info.task_id is not None or info.actor_id is not None:
            return copy.deepcopy(info.runtime_env) if info.runtime_env else {}
        return dict(require().job_runtime_env or {})

    def get_runtime_env_string(self) -> str:
        """runtime_env as a JSON string (a callable setup hook as its repr)."""
        import json  # here, not at import: `import raylite` stays cheap

        return json.dumps(self.runtime_env, default=repr)

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return self._info().was_restarted

    @property
    def current_actor(self) -> Any:
        from .actor import ActorHandle

        info = self._info()
        if info.actor_id is None:
            raise RuntimeError("current_actor is only available inside an actor.")
        return ActorHandle(bytes.fromhex(info.actor_id), require().actor_meta(bytes.fromhex(info.actor_id)))

    def get(self) -> dict:
        info = self._info()
        return {"job_id": info.job_id, "node_id": info.node_id, "namespace": info.namespace,
                "task_id": info.task_id, "actor_id": info.actor_id}


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext()
