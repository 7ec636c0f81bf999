"""The "cluster" runtime's factory: starts the head daemon first, then imports the runtime.

    init() ─► create(request) ─► HeadStart(request)   (the daemon boots on the other core...)
                              ─► import .cluster      (...while this process imports the runtime)
                              ─► ClusterRuntime(request, head=...) waits for READY

Importing the cluster runtime (its owner core, endpoint and object plane) takes about as long
as the daemon needs to start its interpreter, so doing both at once shortens init() by that.
"""
from __future__ import annotations

from .cluster_start import HeadStart


def create(request):
    head = HeadStart(request) if request.mode == "start" else None
    try:
        from .cluster import ClusterRuntime
    except BaseException:
        if head is not None:
            head.abandon()
        raise
    return ClusterRuntime(request, head=head)
