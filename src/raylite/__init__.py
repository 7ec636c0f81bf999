"""raylite: a small, fast, pure-Python runtime that speaks Ray's core API.

    import raylite as ray
    ray.init()

    @ray.remote
    def square(x):
        return x * x

    ray.get([square.remote(i) for i in range(4)])   # [0, 1, 4, 9]

Importing raylite starts nothing: no threads, no hooks, no environment reads.
"""
from . import actor, exceptions, util
from ._api import (available_resources, cancel, cluster_resources, get, get_actor, get_gpu_ids,
                   init, is_initialized, kill, nodes, put, remote, shutdown, timeline, wait)
from ._ids import (ActorClassID, ActorID, FunctionID, JobID, NodeID, PlacementGroupID, TaskID,
                   UniqueID, WorkerID)
from ._runtime.object_ref import ObjectRef
from .actor import method
from .runtime_context import get_runtime_context

ObjectID = ObjectRef  # Ray's older name for it

__version__ = "0.1.0"

__all__ = [
    "ActorClassID",
    "ActorID",
    "FunctionID",
    "JobID",
    "NodeID",
    "ObjectID",
    "ObjectRef",
    "PlacementGroupID",
    "TaskID",
    "UniqueID",
    "WorkerID",
    "__version__",
    "actor",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "util",
    "wait",
]
