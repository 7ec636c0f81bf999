"""Utilities built only on the public API (Ray's ray.util).

    ActorPool                      spread calls over a fixed set of actors
    as_completed, map_unordered    results as tasks finish (helpers.py)
    get_node_ip_address            this process's node address
    list_named_actors              the live named actors (this namespace, or all)
    inspect_serializability        names the part of an object that cannot be pickled
    placement_group, remove_placement_group, get_placement_group, placement_group_table,
    get_current_placement_group, PlacementGroup    placement groups (placement_group.py)
    register_serializer, deregister_serializer    per-process custom serializers

Submodules imported on demand, as in Ray: `raylite.util.scheduling_strategies`
(PlacementGroupSchedulingStrategy), `raylite.util.queue` (Queue, Empty,
Full), `raylite.util.multiprocessing` (Pool), `raylite.util.joblib`
(register_ray), `raylite.util.state` (the state API: list_*, get_*, summarize_*, logs).
"""
import importlib

from .actor_pool import ActorPool

# name -> the submodule defining it, imported on first use (keeps `import raylite` cheap)
_LAZY = {"as_completed": "helpers", "get_node_ip_address": "helpers", "map_unordered": "helpers",
         "list_named_actors": "helpers",
         "inspect_serializability": "check_serialize", "register_serializer": "serialization",
         "deregister_serializer": "serialization", "placement_group": "placement_group",
         "placement_group_table": "placement_group", "remove_placement_group": "placement_group",
         "get_placement_group": "placement_group",
         "get_current_placement_group": "placement_group", "PlacementGroup": "placement_group"}

__all__ = ["ActorPool", "PlacementGroup", "as_completed", "deregister_serializer",
           "get_current_placement_group", "get_node_ip_address", "get_placement_group",
           "inspect_serializability", "list_named_actors", "map_unordered", "placement_group",
           "placement_group_table", "register_serializer", "remove_placement_group"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raylite.util' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
