"""The dashboard's pages: each a function of (Reader, History, query) -> (status, HTML).

    /          overview: nodes, resources used / total, workers, actors, drivers, the object
               store, and three plots of the last hour (History, sampled by server.py)
    /jobs      drivers connected to the cluster (JobRecord)
    /actors    actors, filtered by state / class / name, paged
    /tasks     tasks from the GCS's task-event store (in flight and ended, oldest first),
               filtered by state / name / actor and paged there: only the page travels
    /objects   objects their owners hold and where their bytes are, filtered by state, paged
    /logs      the files of <session>/logs; /logs/view?name=F tails one, with follow (logs.py)

Every page reads only the state records through the Reader (the state request of
`raylite status`); filters apply to every record before paging, so page 3 of a
filtered table is page 3 of the matches.
"""
from __future__ import annotations

from . import history as hist
from .html import amount, esc, filter_form, layout, mib, pager, paging, short, table, tabs
from .reader import ClusterUnavailable

TASK_STATES = ("PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT",
               "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY", "RUNNING", "FINISHED", "FAILED")
ACTOR_STATES = ("PENDING", "ALIVE", "RESTARTING", "DEAD")
OBJECT_STATES = ("PENDING", "INLINE", "SHARED_MEMORY", "SPILLED", "ERROR")
TASKS_NOTE = ("Every attempt of every task the cluster keeps (a bounded number per job, oldest "
              "finished first out), oldest first; changes arrive within about 100 ms.")


def unavailable(title: str, active: str, err: ClusterUnavailable) -> tuple[int, str]:
    return 503, layout(title, active, f'<p class=error id=unavailable>{esc(err)}</p>')


def _missing(missing: tuple) -> str:
    if not missing:
        return ""
    return (f'<p class=note>No answer in time from {esc(", ".join(missing))}: what they own is '
            'not listed.</p>')


def _counts(values) -> str:
    c: dict = {}
    for v in values:
        c[v] = c.get(v, 0) + 1
    return ", ".join(f"{n} {esc(k)}" for k, n in sorted(c.items())) or "none"


def overview(reader, history, query: dict, now: float) -> tuple[int, str]:
    try:
        snap, _ = reader.state(("nodes", "jobs", "workers", "leases", "actors", "objects"), False)
    except ClusterUnavailable as e:
        return unavailable("Cluster", "/", e)
    rows = []
    for n in sorted(snap.nodes, key=lambda n: (not n.is_head, n.node_id)):
        t, f = n.resources_total, n.resources_available
        rows.append([short(n.node_id), "head" if n.is_head else "node", esc(n.address),
                     esc(n.hostname), "alive" if n.alive else "dead",
                     f"{hist.used(t, f, 'CPU'):g} / {t.get('CPU', 0):g}",
                     f"{amount('memory', hist.used(t, f, 'memory'))} / "
                     f"{amount('memory', t.get('memory', 0))}",
                     amount("object_store_memory", t.get("object_store_memory", 0)),
                     esc(", ".join(f"{k}: {v:g}" for k, v in sorted(t.items())
                                   if k not in ("CPU", "memory", "object_store_memory")
                                   and not k.startswith("node:")))])
    nodes = table(["node", "role", "address", "host", "state", "CPU used / total",
                   "memory used / total", "object store", "other resources"], rows,
                  "nodes-table", "no nodes")
    s = hist.sample_of(snap, now)
    shm = [o for o in snap.objects if o.state == "SHARED_MEMORY"]
    spilled = [o for o in snap.objects if o.state == "SPILLED"]
    cards = []
    for title, uf, tf, fmt in (("CPU", "cpu_used", "cpu_total", lambda v: f"{v:g}"),
                               ("Memory (reserved)", "mem_used", "mem_total",
                                lambda v: amount("memory", v)),
                               ("Object store", "store_used", "store_total", mib)):
        now_u, now_t = getattr(s, uf), getattr(s, tf)
        points = history.series(uf, tf, now)
        minutes = hist.span_of(points, history.window) / 60
        cards.append(f'<div class=card><h2>{title}: {fmt(now_u)} / {fmt(now_t)}</h2>'
                     f'{hist.sparkline(points, history.window)}'
                     f'<div class=empty>the last {minutes:.0f} min (up to an hour kept), '
                     f'a sample every {history.interval:g} s</div></div>')
    pending = sum(1 for x in snap.leases if x.state == "PENDING")
    summary = (f'<ul id=summary><li>workers: {_counts(w.state for w in snap.workers)}</li>'
               f'<li>actors: {_counts(a.state for a in snap.actors)}</li>'
               f'<li>drivers: {sum(1 for j in snap.jobs if j.alive)}</li>'
               f'<li>pending lease requests: {pending}</li>'
               f'<li>object store: {mib(sum(o.size or 0 for o in shm))} in shared memory '
               f'({len(shm)} objects), {mib(sum(o.size or 0 for o in spilled))} spilled '
               f'({len(spilled)} objects)</li>{_spilling(snap.nodes)}</ul>')
    body = (f'<p>Cluster at <code>{esc(reader.address)}</code></p>'
            f'<div class=cards id=plots>{"".join(cards)}</div>{nodes}{summary}')
    return 200, layout("Cluster", "/", body)


def _spilling(nodes) -> str:
    """The object store's spilling, as `raylite status` says it (copies under way, totals)."""
    from raylite.cli.status import format_spilling

    return "".join(f"<li class=spilling>{esc(line)}</li>" for line in format_spilling(nodes))


def jobs(reader, history, query: dict, now: float) -> tuple[int, str]:
    try:
        snap, _ = reader.state(("jobs",), False)
    except ClusterUnavailable as e:
        return unavailable("Jobs", "/jobs", e)
    rows = [[short(j.job_id, 32), esc(j.namespace), esc(j.pid), "alive" if j.alive else "ended"]
            for j in sorted(snap.jobs, key=lambda j: (not j.alive, j.job_id))]
    body = table(["job (driver)", "namespace", "pid", "state"], rows, "jobs-table",
                 "no drivers have connected")
    return 200, layout("Jobs", "/jobs", body,
                       note="Drivers connected to the cluster; `raylite job list` lists "
                            "submitted jobs.")


def page_of(match: list, key, page: int, per: int) -> list:
    """Rows of page `page` of `match` in `key` order, without sorting all of it: the first
    page*per by heapq (O(n log k)), so early pages of 100,000 records stay cheap."""
    import heapq

    end = page * per
    first = heapq.nsmallest(end, match, key=key) if end < len(match) else sorted(match, key=key)
    return first[end - per:end]


def _contains(value, needle: str) -> bool:
    return not needle or needle.lower() in ("" if value is None else str(value)).lower()


def actors(reader, history, query: dict, now: float) -> tuple[int, str]:
    try:
        snap, _ = reader.state(("actors",), False)
    except ClusterUnavailable as e:
        return unavailable("Actors", "/actors", e)
    state, cls, name = query.get("state", ""), query.get("class", ""), query.get("name", "")
    match = [a for a in snap.actors if (not state or a.state == state)
             and _contains(a.class_name, cls) and _contains(a.name, name)]
    page, per = paging(query)
    shown = page_of(match, lambda a: (a.state == "DEAD", a.class_name, a.actor_id), page, per)
    rows = [[short(a.actor_id, 32), esc(a.class_name), esc(a.name or "-"), esc(a.namespace),
             f'<span class="state state-{esc(a.state)}">{esc(a.state)}</span>',
             esc(a.address or "-"), esc(a.restarts), "yes" if a.detached else "no",
             esc(a.death or "")] for a in shown]
    body = (filter_form("/actors", [("state", "state", ACTOR_STATES), ("class", "class", None),
                                    ("name", "name", None)], query)
            + table(["actor", "class", "name", "namespace", "state", "address", "restarts",
                     "detached", "death"], rows, "actors-table", "no actors match")
            + pager("/actors", len(match), page, per, query))
    return 200, layout("Actors", "/actors", body)


def tasks(reader, history, query: dict, now: float) -> tuple[int, str]:
    import urllib.parse

    state, name, actor = query.get("state", ""), query.get("name", ""), query.get("actor", "")
    filters = [f for f in (("state", "=", state), ("name", "~", name), ("actor_id", "~", actor))
               if f[2]]
    view = "timeline" if query.get("view") == "timeline" else "table"
    kept = {k: v for k, v in query.items() if k in ("state", "name", "actor")}
    views = tabs([("/tasks?" + urllib.parse.urlencode(kept), "table", "table"),
                  ("/tasks?" + urllib.parse.urlencode(dict(kept, view="timeline")), "timeline",
                   "timeline")], view)
    form = filter_form("/tasks", [("state", "state", TASK_STATES), ("name", "name", None),
                                  ("actor", "actor id", None)], query, hidden=("view", "window"))
    if view == "timeline":
        from . import timeline

        try:
            body = timeline.body(reader, query, filters, now)
        except ClusterUnavailable as e:
            return unavailable("Tasks", "/tasks", e)
        return 200, layout("Tasks", "/tasks", views + form + body, note=timeline.NOTE)
    page, per = paging(query)
    try:
        got = reader.tasks(filters, per, (page - 1) * per)
    except ClusterUnavailable as e:
        return unavailable("Tasks", "/tasks", e)
    rows = [[_task_link(t), esc(t.name),
             f'<span class="state state-{esc(t.state)}">{esc(t.state)}</span>',
             esc(t.attempt_number), esc(t.worker_pid or "-"), _took(t), esc(t.error_type or ""),
             short(t.actor_id)] for t in got.records]
    dropped = (f'<p class=note>{got.dropped} older task records were dropped (the cluster '
               f'keeps {got.max_per_job} per job).</p>' if got.dropped else "")
    body = (views + dropped + form
            + table(["task", "name", "state", "attempt", "worker pid", "ran (ms)", "error",
                     "actor"], rows, "tasks-table", "no tasks match")
            + pager("/tasks", got.total, page, per, query))
    return 200, layout("Tasks", "/tasks", body, note=TASKS_NOTE)


def _task_link(t) -> str:
    """The task's id, linking to what its attempt printed (/tasks/log)."""
    return (f'<a href="/tasks/log?task_id={esc(t.task_id)}&amp;attempt={esc(t.attempt_number)}" '
            f'class="id task-log-link" title="its output">{esc(t.task_id[:32])}</a>')


def _took(t) -> str:
    if t.start_time_us is None or t.end_time_us is None:
        return "-"
    return f"{(t.end_time_us - t.start_time_us) / 1000:.1f}"


def objects(reader, history, query: dict, now: float) -> tuple[int, str]:
    try:
        snap, missing = reader.state(("objects",), True)
    except ClusterUnavailable as e:
        return unavailable("Objects", "/objects", e)
    state, owner = query.get("state", ""), query.get("owner", "")
    match = [o for o in snap.objects if o.state != "BORROWED" and (not state or o.state == state)
             and _contains(o.owner, owner)]
    page, per = paging(query)
    shown = page_of(match, lambda o: (-(o.size or 0), o.object_id), page, per)
    rows = [[short(o.object_id, 40), "-" if o.size is None else f"{o.size:,d}", esc(o.state),
             esc(o.owner or "?"),
             "unknown" if o.local_refs is None else esc(o.local_refs), esc(o.borrowers)]
            for o in shown]
    total = sum(o.size or 0 for o in match)
    body = (_missing(missing)
            + filter_form("/objects", [("state", "where", OBJECT_STATES), ("owner", "owner", None)],
                          query)
            + f'<p>{len(match)} objects, {mib(total)} (largest first)</p>'
            + table(["object", "size (bytes)", "where", "owner", "local refs", "borrowers"], rows,
                    "objects-table", "no objects match")
            + pager("/objects", len(match), page, per, query))
    return 200, layout("Objects", "/objects", body)


PAGES = {"/": overview, "/jobs": jobs, "/actors": actors, "/tasks": tasks, "/objects": objects}
