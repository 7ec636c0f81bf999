"""The state API (Ray's ray.util.state): what a cluster runs and holds, as rows in Ray's schema.

    from raylite.util.state import list_tasks, list_actors, summarize_tasks
    list_tasks(filters=[("state", "=", "RUNNING")], limit=100)
    list_actors(detail=True)[0].state            # rows allow r.state and r["state"]

    list_actors/tasks/objects/nodes/workers/jobs/placement_groups   rows (a list, StateList)
    get_actor/task/node/worker/job/placement_group, get_objects      one id's rows
    summarize_tasks/actors/objects                                   counts, by name or kind
    list_logs, get_log                                               the log files kept here

    api.py      the calls: which records to ask for, then filter, limit, report
    schema.py   raylite's records (_core/records.py) in Ray's field names; what Ray has that
                raylite does not know yet (LACKING)
    common.py   rows (StateRecord), filters, the limit, partial results (pure)
    fetch.py    whom to ask: the runtime of init() (local mode answers itself), an address,
                $RAYLITE_ADDRESS, or the head `raylite start` recorded; no connection is left
    logs.py     the cluster's log files on this machine

Filters apply before the limit, so a match is never lost to it. A list is partial when the
limit left rows out or an owner (a driver or worker asked for its tasks and objects) did not
answer in time: each reason is a warning (StateList.partial has them), and with
raise_on_missing_output=True (the default, as Ray's) a missing owner is an error.
"""
from .api import (get_actor, get_job, get_node, get_objects, get_placement_group, get_task,
                  get_worker, list_actors, list_jobs, list_nodes, list_objects,
                  list_placement_groups, list_tasks, list_workers, summarize_actors,
                  summarize_objects, summarize_tasks)
from .common import RayStateApiException, StateList, StateRecord
from .logs import get_log, list_logs

__all__ = ["RayStateApiException", "StateList", "StateRecord", "get_actor", "get_job", "get_log",
           "get_node", "get_objects", "get_placement_group", "get_task", "get_worker",
           "list_actors", "list_jobs", "list_logs", "list_nodes", "list_objects",
           "list_placement_groups", "list_tasks", "list_workers", "summarize_actors",
           "summarize_objects", "summarize_tasks"]
