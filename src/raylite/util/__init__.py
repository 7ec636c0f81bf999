"""Utilities built only on the public API (Ray's ray.util).

    ActorPool                      spread calls over a fixed set of actors
    as_completed, map_unordered    results as tasks finish (helpers.py)
    get_node_ip_address            this process's node address
    inspect_serializability        names the part of an object that cannot be pickled
    register_serializer, deregister_serializer    per-process custom serializers

Submodules imported on demand, as in Ray: `raylite.util.queue` (Queue, Empty,
Full), `raylite.util.multiprocessing` (Pool), `raylite.util.joblib`
(register_ray), `raylite.util.state` (the state API: list_*, get_*, summarize_*, logs).
"""
from .actor_pool import ActorPool
from .check_serialize import inspect_serializability
from .helpers import as_completed, get_node_ip_address, map_unordered
from .serialization import deregister_serializer, register_serializer

__all__ = ["ActorPool", "as_completed", "deregister_serializer", "get_node_ip_address",
           "inspect_serializability", "map_unordered", "register_serializer"]
