"""`raylite list|get|summary|logs`: the state API (raylite.util.state) from the shell.

    raylite list KIND [--filter KEY=VALUE ...] [--limit N] [--detail] [--format table|json|yaml]
    raylite get KIND ID                                   one id's rows, every field
    raylite summary tasks|actors|objects                  counts by name, class or where
    raylite logs [FILE] [--job-id ID | --pid P | --actor-id A [--err]] [--follow] [--tail N]
    raylite timeline [--output FILE]                      the tasks as Chrome trace JSON

Each command asks the cluster at --address, or the head `raylite start` recorded under the temp
dir, over one connection it closes (no init(), nothing left behind). A partial list (left out
by the limit, owners that did not answer) says so on stderr and still exits 0; no cluster or a
bad filter exits 1. format_rows() is pure: tests/unit/test_state_common.py checks it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

KINDS = ("actors", "tasks", "objects", "nodes", "workers", "jobs", "placement-groups")
YAML_MISSING = ("--format yaml needs PyYAML, which is not installed: `pip install pyyaml` "
                "(or use --format json)")


def _cell(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_num(x)}" for k, x in v.items()) or "-"
    return "-" if v is None or v == "" else str(v)


def _num(x) -> str:
    return f"{x:.0f}" if isinstance(x, float) and x.is_integer() else f"{x:g}" \
        if isinstance(x, float) else str(x)


def table(rows: list, columns: tuple) -> str:
    """An aligned text table with one header line."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    head = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()
    return "\n".join([head] + ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip()
                               for row in cells])


def format_rows(data, fmt: str, columns: tuple | None = None) -> str:
    """`data` (rows, or a dict for summaries) as a table, json or yaml (ValueError without
    PyYAML, naming the install)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    if fmt == "yaml":
        try:
            import yaml
        except ImportError:
            raise ValueError(YAML_MISSING) from None
        return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False).rstrip()
    if columns is None:
        columns = tuple(dict.fromkeys(k for r in data for k in r)) if data else ()
    return table(data, columns) if columns else "(none)"


def _fail(cmd: str, e: Exception) -> int:
    print(f"raylite {cmd}: {e}", file=sys.stderr)
    return 1


def run_list(args: argparse.Namespace) -> int:
    from raylite.util.state import api, common, schema

    kind = args.kind.replace("-", "_")
    try:
        filters = [common.parse_filter(f) for f in args.filter or ()]
        rows = api.query(kind, args.address, filters, None if args.limit < 0 else args.limit,
                         args.timeout, args.detail, False, args.temp_dir, warn=False)
        text = format_rows(list(map(dict, rows)), args.format,
                           schema.columns(kind, args.detail) if args.format == "table" else None)
    except (common.RayStateApiException, ValueError) as e:
        return _fail("list", e)
    print(text)
    for reason in rows.partial:
        print(f"raylite list {args.kind}: {reason}", file=sys.stderr)
    return 0


def run_get(args: argparse.Namespace) -> int:
    from raylite.util.state import api, common, schema

    kind = args.kind.replace("-", "_")
    try:
        rows = api.query(kind, args.address, [(schema.ID[kind], "=", args.id)], None,
                         args.timeout, True, False, args.temp_dir, warn=False)
        if not rows:
            raise common.RayStateApiException(f"no {args.kind[:-1]} with id {args.id!r}")
        data = [dict(r) for r in rows]
        text = format_rows(data if len(data) > 1 else data[0],
                           "yaml" if args.format == "table" and _has_yaml() else
                           "json" if args.format == "table" else args.format)
    except (common.RayStateApiException, ValueError) as e:
        return _fail("get", e)
    print(text)
    return 0


def _has_yaml() -> bool:
    import importlib.util

    return importlib.util.find_spec("yaml") is not None


def format_summary(kind: str, data: dict) -> str:
    c = data["cluster"]
    if kind == "tasks":
        rows = [{"func_or_class_name": n, "type": s["type"], "state_counts": s["state_counts"]}
                for n, s in c["summary"].items()]
        head = (f"Tasks: {c['total_tasks']} ({c['total_actor_tasks']} actor tasks, "
                f"{c['total_actor_scheduled']} actor creations)")
    elif kind == "actors":
        rows = [{"class_name": n, "state_counts": s["state_counts"]} for n, s in c["summary"].items()]
        head = f"Actors: {c['total_actors']}"
    else:
        rows = [{"state": n, "total_objects": s["total_objects"],
                 "total_size_mb": f"{s['total_size_mb']:.2f}", "task_state_counts":
                 s["task_state_counts"], "ref_type_counts": s["ref_type_counts"]}
                for n, s in c["summary"].items()]
        head = f"Objects: {c['total_objects']}, {c['total_size_mb']:.2f} MiB"
    return head + "\n\n" + (table(rows, tuple(rows[0])) if rows else "(none)")


def run_summary(args: argparse.Namespace) -> int:
    from raylite.util.state import api, common

    try:
        data = getattr(api, f"summarize_{args.kind}")(args.address, args.timeout, False,
                                                      _temp_dir=args.temp_dir)
        text = format_summary(args.kind, data) if args.format == "table" else \
            format_rows({"cluster": data["cluster"]}, args.format)
    except (common.RayStateApiException, ValueError) as e:
        return _fail("summary", e)
    print(text)
    if data.get("missing"):
        print(f"raylite summary {args.kind}: no answer in time from {', '.join(data['missing'])}: "
              "what they own is not counted", file=sys.stderr)
    if data.get("dropped"):
        print(f"raylite summary {args.kind}: {data['dropped']} older task record(s) were dropped "
              "by the cluster's bound per job and are not counted", file=sys.stderr)
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from raylite.util.state import common, logs

    try:
        if args.filename is None and args.job_id is None and args.actor_id is None and \
                args.task_id is None and args.pid is None:
            files = logs.list_logs(args.address, _temp_dir=args.temp_dir)
            for cat, names in files.items():
                print(f"{cat}:" + ("" if names else " (none)"))
                for n in names:
                    print(f"  {n}")
            return 0
        lines = logs.get_log(args.address, filename=args.filename, actor_id=args.actor_id,
                             task_id=args.task_id, submission_id=args.job_id, pid=args.pid,
                             attempt_number=args.attempt,
                             suffix="err" if args.err else "out",
                             follow=args.follow, tail=args.tail, _temp_dir=args.temp_dir)
        for line in lines:
            sys.stdout.write(line)
            if args.follow:
                sys.stdout.flush()
    except common.RayStateApiException as e:
        return _fail("logs", e)
    except KeyboardInterrupt:
        return 0
    return 0


def run_timeline(args: argparse.Namespace) -> int:
    import time

    from raylite.util.state import common
    from raylite.util.state.timeline import timeline

    try:
        events = timeline(None, args.address, args.timeout, _temp_dir=args.temp_dir)
    except common.RayStateApiException as e:
        return _fail("timeline", e)
    if args.output == "-":
        json.dump(events, sys.stdout)
        print()
        return 0
    path = args.output or time.strftime("raylite-timeline-%Y-%m-%d_%H-%M-%S.json")
    try:
        with open(path, "w") as f:
            json.dump(events, f)
    except OSError as e:
        print(f"raylite timeline: cannot write {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    spans = sum(1 for e in events if e["ph"] == "X")
    print(f"Trace of {spans} task(s) written to {os.path.abspath(path)}: open it in https://ui.perfetto.dev "
          "or chrome://tracing")
    return 0
