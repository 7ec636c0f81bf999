"""A placement group's bundles as one node holds them (the node scheduler's bookkeeping,
scheduler.py; pure: no I/O, no clock)."""
from __future__ import annotations


class Group:
    __slots__ = ("bundles", "held", "committed", "gpus", "gpu_home")

    def __init__(self, bundles: dict, held: dict):
        self.bundles = bundles          # index -> the bundle's resources, as the user gave them
        self.held = held                # their sum: what left `available` when prepared
        self.committed: dict = {}       # the renamed resources committing added
        self.gpus: dict = {}            # index -> the GPU ids the bundle holds, free in it
        self.gpu_home: dict = {}        # GPU id -> the bundle index it belongs to


def removed(group: str) -> str:
    return (f"its placement group {group} was removed. Create a new placement group and "
            "schedule into that one.")
