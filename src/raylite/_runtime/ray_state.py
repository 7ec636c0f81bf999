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
py_modules) and its setup hook, which Ray takes only in ray.init(): a warning says so once
(JOB_ONLY).

The namespace, joining a Ray the program started: that Ray job's namespace is fixed, so
init(namespace=...) is raylite's own (joined_namespace): RayRuntime._namespace, carried
by the wrappers of every task and actor the job starts, is what get_runtime_context()
reports and the default of named actors there; Ray's own calls keep the Ray job's (a
warning says so when the two differ).
"""
from __future__ import annotations

import json
import os
from typing import Any

from .._runtime_env.validate import described, merge
from .base import ContextInfo
from .ray_errors import translated as _translated

GIVEN_ENV = "RAYLITE_RUNTIME_ENV_GIVEN"
# Ray takes local paths, and runs a setup hook, only from ray.init() (Ray 2.60: a callable
# hook per task is a TypeError, a "module.func" one is not run; observed)
JOB_ONLY = ("working_dir", "py_modules", "excludes", "worker_process_setup_hook")


def joined_job_env(job: dict | None) -> dict | None:
    """What of init()'s runtime_env a Ray this runtime joined can take per task and actor
    (a warning names what it cannot)."""
    if not job:
        return job
    left = sorted(k for k in JOB_ONLY if job.get(k))
    if left:
        import warnings

        warnings.warn(f"runtime_env {left} given to init() are not applied: this program joined "
                      "a Ray it did not start, and Ray takes local directories and a setup "
                      "hook only in ray.init(). Pass them to that ray.init(), or let raylite "
                      "start Ray.", stacklevel=4)
    return {k: v for k, v in job.items() if k not in JOB_ONLY}


def joined_namespace(namespace: str | None, ray: Any) -> str | None:
    """raylite's namespace on a Ray this program started (None: that Ray job's own); a
    warning when init() named another one than the Ray job's."""
    job = ray.get_runtime_context().namespace
    if namespace is None or namespace == job:
        return None
    import warnings

    warnings.warn(f"raylite.init(namespace={namespace!r}) joined a Ray this program started in "
                  f"namespace {job!r}, and a Ray job's namespace cannot change: raylite's calls "
                  f"use {namespace!r} (get_runtime_context().namespace in the driver and in "
                  "every task and actor, named actors, get_actor), Ray's own calls made "
                  f"directly (ray.get_actor, ray.get_runtime_context) keep {job!r}. Pass "
                  f"namespace={namespace!r} to that ray.init() too, or let raylite start Ray.",
                  stacklevel=4)
    return namespace


def _own_hook(own: dict | None) -> None:
    """A setup hook per task or actor: Ray 2.60 runs only init()'s (a callable one is its
    TypeError, a "module.function" one is not run; observed): a clear error, or a warning."""
    hook = (own or {}).get("worker_process_setup_hook")
    if hook is None:
        return
    what = ("Ray 2.60 runs a worker_process_setup_hook given to init() only (and its tasks' "
            "and actors' children inherit it)")
    if callable(hook):
        raise ValueError(f"runtime_env['worker_process_setup_hook'] per task or actor is not "
                         f"supported on the ray runtime: {what}. Give it to raylite.init("
                         "runtime_env=...), or run on raylite's own runtimes.")
    import warnings

    warnings.warn(f"runtime_env['worker_process_setup_hook'] {hook!r} of a task or actor is "
                  f"not run on the ray runtime: {what}. Give it to raylite.init(runtime_env=...).",
                  stacklevel=6)


def _running_env() -> dict | None:
    """The runtime_env the code running in this Ray worker was given (None: none)."""
    given = os.environ.get(GIVEN_ENV)
    return json.loads(given) if given else None


class RayState:
    """RayRuntime's cluster-state calls (and the runtime_env Ray gets: _ray_env)."""

    _joined_env: dict | None = None  # init()'s runtime_env, as a joined Ray takes it

    def _ray_env(self, own: dict | None) -> dict | None:
        """The runtime_env Ray gets for a task or actor whose options say `own`."""
        _own_hook(own)
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
        """Ray's nodes, jobs, actors and placement groups, as raylite's records (read from
        Ray's GCS: ray_tables.py); the kinds only Ray's state API has (tasks, objects,
        workers) are not here (raylite.util.state says what they need: util/state/on_ray.py)."""
        from .._core.records import NodeRecord, StateSnapshot
        from . import ray_tables

        listed = self.nodes()
        available = self.available_resources() if len(listed) == 1 else {}  # Ray's is cluster-wide
        nodes = tuple(NodeRecord(n["NodeID"], f"{n['NodeManagerAddress']}:{n.get('NodeManagerPort')}",
                                 n.get("NodeManagerHostname", ""), bool(n.get("Alive")),
                                 "node:__internal_head__" in n.get("Resources", {}),
                                 dict(n.get("Resources", {})), dict(available))
                      for n in listed)
        c = self._ray.get_runtime_context()
        jobs = _translated(ray_tables.jobs)(c.get_job_id(), self._namespace or c.namespace)
        actors, hosts = _translated(ray_tables.actors)()
        return StateSnapshot(source="ray", nodes=nodes, jobs=jobs, workers=hosts, actors=actors,
                             placement_groups=self.placement_groups(None, None))

    def timeline(self) -> list:
        """Ray's Chrome trace events of the tasks it recorded (ray.timeline(): read from
        Ray's GCS, no dashboard needed in Ray 2.60)."""
        return _translated(self._ray.timeline)()
