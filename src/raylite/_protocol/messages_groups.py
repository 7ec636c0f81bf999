"""The placement-group messages of the one vocabulary (messages.py re-exports them): a
driver's requests to the GCS, and the GCS's two phases with the nodes that hold bundles.

    driver ──CreatePlacementGroup / RemovePlacementGroup / GetPlacementGroup──► GCS
    GCS ──PrepareBundles──► each node ──BundlesPrepared──► GCS ──CommitBundles──► each node
    GCS ──ReturnBundles(removed)──► each node holding some of the group
"""

from typing import NamedTuple


class PlacementGroupSpec(NamedTuple):
    group_id: bytes
    bundles: tuple             # of dicts {resource: amount}
    strategy: str              # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD
    name: str                  # "" for none
    namespace: str
    detached: bool
    job_id: bytes


class CreatePlacementGroup(NamedTuple):
    req: int
    spec: PlacementGroupSpec


class PlacementGroupCreated(NamedTuple):
    req: int
    error: str | None          # refused (the name is taken)
    warning: str | None        # accepted, but it cannot be placed on the cluster as it is


class RemovePlacementGroup(NamedTuple):
    req: int
    group_id: bytes


class GetPlacementGroup(NamedTuple):
    """One group by id or by (name, namespace); neither: every group."""
    req: int
    group_id: bytes | None
    name: str | None
    namespace: str | None


class PlacementGroupInfo(NamedTuple):
    req: int
    records: tuple             # records.PlacementGroupRecord, one per group found


class PrepareBundles(NamedTuple):
    """GCS -> node: hold these bundles ({index: resources}) of the group once they fit."""
    group_id: bytes
    bundles: dict


class BundlesPrepared(NamedTuple):
    """Node -> GCS: this node holds its bundles of the group."""
    group_id: bytes


class CommitBundles(NamedTuple):
    """GCS -> node: every node holds its part: the bundles become resources of their own."""
    group_id: bytes


class ReturnBundles(NamedTuple):
    """GCS -> node: the group was removed (or, not `removed`, is placed again): give its
    bundles back, end what runs in them."""
    group_id: bytes
    removed: bool = True
