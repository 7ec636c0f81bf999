"""What the ray runtime (RAYLITE_RUNTIME=ray) reports: Ray's nodes, resources, this
process's context and a state snapshot, as raylite's records.

A mixin of RayRuntime (ray_runtime.py), which has `_ray`, `_namespace` and `_restarted`.
"""
from __future__ import annotations

import os
from typing import Any

from .base import ContextInfo
from .ray_errors import translated as _translated


class RayState:
    """RayRuntime's cluster-state calls."""

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
                           task_function_name=c.get_task_function_name() if in_task else None)

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
