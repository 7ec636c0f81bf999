"""get_runtime_context(): who and where the calling code is (job, node, task, actor)."""
from __future__ import annotations

from typing import Any

from ._runtime import require


class RuntimeContext:
    """A live view: each getter asks the current runtime."""

    def _info(self) -> Any:
        return require().context()

    def get_job_id(self) -> str:
        return self._info().job_id

    def get_node_id(self) -> str:
        return self._info().node_id

    def get_worker_id(self) -> str:
        return self._info().worker_id

    def get_task_id(self) -> str | None:
        return self._info().task_id

    def get_actor_id(self) -> str | None:
        return self._info().actor_id

    def get_actor_name(self) -> str | None:
        return self._info().actor_name

    @property
    def namespace(self) -> str:
        return self._info().namespace

    def get_namespace(self) -> str:
        return self.namespace

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return self._info().was_restarted

    def get_assigned_resources(self) -> dict:
        return dict(self._info().assigned_resources)

    def get_accelerator_ids(self) -> dict:
        return {"GPU": [str(i) for i in self._info().gpu_ids]}

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
