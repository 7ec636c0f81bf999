"""raylite.util.state on the ray runtime (RAYLITE_RUNTIME=ray): what answers, what cannot.

    list_nodes / get_node                    Ray's nodes (ray.nodes())
    list_jobs / get_job                      Ray's GCS job table: every Ray job
    list_actors / get_actor / summarize_actors   Ray's GCS actor table (namespace, pid, node)
    list_placement_groups / get_placement_group  ray.util.placement_group_table()
        all four through RayRuntime.state() (_runtime/ray_state.py, ray_tables.py): Ray's
        GCS, read as `ray._private.state` does, which needs no dashboard

    list_tasks, get_task, summarize_tasks    RayStateApiException (NEEDS_RAY_STATE_API):
    list_objects, get_objects, summarize_objects   Ray keeps these records in its workers
    list_workers, get_worker                 and raylets, where only its state API, served
    list_logs, get_log                       by its dashboard, reads them

The error names what is needed (`pip install "ray[default]"`, a Ray started with its
dashboard, then Ray's own `ray.util.state.<call>`); raylite does not call Ray's state API
itself: it needs a dashboard the ray runtime does not start, and it found "multiple active
Ray instances" where tests share one Ray (a mapping was tried and reverted).
"""
from __future__ import annotations

from .common import RayStateApiException

WHAT = {"tasks": "task records are read", "objects": "object records are read",
        "workers": "worker records are read", "logs": "logs are listed and read"}


def refuse(call: str, what: str, session_dir: str | None = None) -> None:
    """RayStateApiException for a state call the ray runtime cannot answer, saying why and
    what to do instead."""
    where = (f" Ray's log files of this node are in {session_dir}/logs."
             if what == "logs" and session_dir else "")
    raise RayStateApiException(
        f"raylite.util.state.{call}() is not available on the ray runtime (RAYLITE_RUNTIME=ray):"
        f" Ray's {WHAT[what]} only through Ray's state API, served by Ray's dashboard."
        f" Install it (pip install \"ray[default]\"), start Ray with its dashboard (`ray start "
        f"--head`, or ray.init(include_dashboard=True) before raylite.init()), and call "
        f"ray.util.state.{call}() there.{where} On this runtime list_nodes, list_jobs, "
        "list_actors and list_placement_groups (and their get_ and summarize_ forms) answer "
        "from Ray's GCS.")
