"""What the ray runtime (RAYLITE_RUNTIME=ray) reports: Ray's nodes, resources, this
process's context and a state snapshot, as raylite's records.

A mixin of RayRuntime (ray_runtime.py), which has `_ray`, `_namespace`, `_restarted`,
`_owns_ray` and `_in_worker`.

runtime_env as given: a task or actor whose runtime_env (its own or the job's) is not empty
runs on Ray with one more env var, GIVEN_ENV: the env as raylite reports it (its keys over
the job's, or over the running task's in a Ray worker), JSON. Ray keeps workers apart by
runtime_env, so a worker's os.environ says what the code it runs was given. When this
runtime joined a Ray the program started, init()'s runtime_env is applied per task and
actor (Ray's job env is that program's), but its local directories (working_dir,
py_modules), which Ray takes only in ray.init(): a warning says so once (JOB_ONLY).
"""
from __future__ import annotations

import json
import os
from typing import Any

from .._runtime_env.validate import described, merge
from .base import ContextInfo
from .ray_errors import translated as _translated

GIVEN_ENV = "RAYLITE_RUNTIME_ENV_GIVEN"
JOB_ONLY = ("working_dir", "py_modules", "excludes")  # Ray takes local paths in ray.init() only


def joined_job_env(job: dict | None) -> dict | None:
    """What of init()'s runtime_env a Ray this runtime joined can take per task and actor
    (a warning names what it cannot)."""
    if not job:
        return job
    left = sorted(k for k in JOB_ONLY if job.get(k))
    if left:
        import warnings

        warnings.warn(f"runtime_env {left} given to init() are not applied: this program joined "
                      "a Ray it did not start, and Ray takes local directories only in "
                      "ray.init(). Pass them to that ray.init(), or let raylite start Ray.",
                      stacklevel=4)
    return {k: v for k, v in job.items() if k not in JOB_ONLY}


def _running_env() -> dict | None:
    """The runtime_env the code running in this Ray worker was given (None: none)."""
    given = os.environ.get(GIVEN_ENV)
    return json.loads(given) if given else None


class RayState:
    """RayRuntime's cluster-state calls (and the runtime_env Ray gets: _ray_env)."""

    _joined_env: dict | None = None  # init()'s runtime_env, as a joined Ray takes it

    def _ray_env(self, own: dict | None) -> dict | None:
        """The runtime_env Ray gets for a task or actor whose options say `own`."""
        if self._in_worker:
            job = _running_env()
        elif self._owns_ray:
            job = self.job_runtime_env
        else:
            job = self._joined_env
        given = described(job, own)
        if given is None:
            return own
        env = dict((own if self._owns_ray or self._in_worker else merge(job, own)) or {})
        env["env_vars"] = {**(env.get("env_vars") or {}), GIVEN_ENV: json.dumps(given, default=repr)}
        return env

    # -- cluster state -------------------------------------------------------
    def nodes(self) -> list[dict]:
        out = _translated(self._ray.nodes)()
        for n in out:
            n.setdefault("alive", n.get("Alive"))
        return out

    def cluster_resources(self) -> dict:
        return _translated(self._ray.cluster_resources)()

    def available_resources(self) -> dict:
        return _translated(self._ray.available_resources)()

    def context(self) -> ContextInfo:
        ray = self._ray
        c = ray.get_runtime_context()
        actor_id = c.get_actor_id()
        in_task = ray._private.worker.global_worker.mode == ray.WORKER_MODE
        return ContextInfo(job_id=c.get_job_id(), node_id=c.get_node_id(),
                           worker_id=c.get_worker_id(), namespace=self._namespace or c.namespace,
                           task_id=c.get_task_id() if in_task else None, actor_id=actor_id,
                           actor_name=c.get_actor_name() if actor_id else None,
                           assigned_resources=c.get_assigned_resources() if in_task else {},
                           gpu_ids=tuple(ray.get_gpu_ids()) if in_task else (),
                           was_restarted=self._restarted if actor_id else False,
                           task_name=c.get_task_name() if in_task else None,
                           task_function_name=c.get_task_function_name() if in_task else None,
                           runtime_env=_running_env() if in_task else None)

    def state(self) -> Any:
        """Ray's nodes and this job; Ray's own tools (`ray status`, its state API) show
        its tasks, workers and objects."""
        from .._core.records import JobRecord, NodeRecord, StateSnapshot

        listed = self.nodes()
        available = self.available_resources() if len(listed) == 1 else {}  # Ray's is cluster-wide
        nodes = tuple(NodeRecord(n["NodeID"], f"{n['NodeManagerAddress']}:{n.get('NodeManagerPort')}",
                                 n.get("NodeManagerHostname", ""), bool(n.get("Alive")),
                                 "node:__internal_head__" in n.get("Resources", {}),
                                 dict(n.get("Resources", {})), dict(available))
                      for n in listed)
        c = self._ray.get_runtime_context()
        job = JobRecord(c.get_job_id(), c.namespace, os.getpid(), True)
        return StateSnapshot(source="ray", nodes=nodes, jobs=(job,))
