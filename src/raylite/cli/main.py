"""The `raylite` command: start, stop, status, memory, job, list/get/summary/logs, run, microbenchmark.

    raylite start --head [--port 6380] [--num-cpus N] ...   a head that drivers join with
                                                          init(address="auto")
    raylite start --address HOST:PORT                      a node that joins that head
    raylite stop [--force]                                 stops what `start` started here
    raylite status | memory                                what the cluster holds
    raylite dashboard [--port 8265]                        a read-only web UI of the cluster
    raylite job submit|status|logs|stop|delete|list        Jobs: run a command on the head
    raylite list|get|summary KIND ... , raylite logs       the state API (raylite.util.state)
    raylite timeline [--output FILE]                       tasks as a Chrome trace (Perfetto)
    raylite run script.py [args]                           a Ray program, `import ray` -> raylite
    raylite microbenchmark                                 raylite's core microbenchmarks

    main() ─► argparse (this module: stdlib only) ─► "module:function" of the command,
              imported when it runs (start.py, stop.py, status.py, job.py, state.py, run.py,
              microbenchmark.py),
              so `raylite --help` stays quick. The function returns the exit code.

Processes are found through the records `start` writes under the temp dir
(<temp>/raylite_current_cluster, <temp>/raylite_nodes/<pid>; see _records) and
stopped by pid, never by name. The temp dir and everything read from it must be
this user's alone (0700, no links): a command that meets another user's file prints
which path and what to do, and exits 1. Exit codes: 0 done, 1 could not (nothing
running, already running, the daemon failed, a temp dir not ours), 2 bad flags.
"""
from __future__ import annotations

import argparse
import importlib
import sys

_TEMP_HELP = ("root of session dirs, records and logs, ours alone with mode 0700 (default "
              "$RAYLITE_TEMP_DIR or /tmp/raylite_<uid>)")


def _address(v: str) -> str:
    """--address of the commands that talk to a cluster: 'host:port', 'ray://host:port' (the
    head's Ray client port, as init() takes it) or 'auto'."""
    if v == "auto":
        return v
    from raylite._runtime.factory import host_port

    try:
        return host_port(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _start_parser(sub) -> None:
    st = sub.add_parser(
        "start", help="start a head, or a node that joins one",
        description="Start a raylite node daemon that keeps running after this command exits "
                    "(unless --block). --head starts a cluster's head; --address HOST:PORT starts "
                    "a node that joins that head: tasks that do not fit on their driver's node, "
                    "or ask for it (SPREAD, node affinity), run there.")
    role = st.add_mutually_exclusive_group()
    role.add_argument("--head", action="store_true", help="start the head (GCS + this node)")
    role.add_argument("--address", metavar="HOST:PORT",
                      help="join the head at HOST:PORT as a node (token: $RAYLITE_CLUSTER_TOKEN, "
                           "or this machine's session of that head)")
    st.add_argument("--host", default=None,
                    help="interface to listen on (default 127.0.0.1; joining a head on another "
                         "machine, this machine's address on the route to it; 0.0.0.0 for all)")
    st.add_argument("--node-ip-address", metavar="IP",
                    help="the address other nodes reach this one at (default: detected from "
                         "the route to the head)")
    st.add_argument("--labels", metavar="JSON", help='node labels, e.g. \'{"zone": "a"}\'')
    st.add_argument("--port", type=int, default=None,
                    help="port to listen on (head default 6380, node default any; 0 = any free)")
    st.add_argument("--num-cpus", type=float, help="CPUs to offer (default: all)")
    st.add_argument("--num-gpus", type=float, help="GPUs to offer (default: none)")
    st.add_argument("--resources", metavar="JSON",
                    help='custom resources as a JSON object, e.g. \'{"accelerator": 2}\'')
    st.add_argument("--object-store-memory", type=int, metavar="BYTES",
                    help="shared-memory object store size (default 30%% of RAM)")
    st.add_argument("--temp-dir", help=_TEMP_HELP)
    st.add_argument("--dashboard-port", type=int, metavar="P",
                    help="with --head: also serve the web dashboard on 127.0.0.1:P (0 = any "
                         "free port); it prints a one-time login URL, `raylite stop` stops it")
    st.add_argument("--ray-client-server-port", type=int, metavar="P",
                    help="with --head: also listen on P, Ray's client port, so drivers given "
                         "ray://HOST:P join (default 10001, skipped with a warning when taken; "
                         "0 = any free port); same interface (--host) and token as --port")
    st.add_argument("--metrics-export-port", type=int, metavar="P",
                    help="with --head: also serve Prometheus metrics at 127.0.0.1:P/metrics "
                         "(the cluster token as a bearer token); off by default")
    st.add_argument("--block", action="store_true",
                    help="stay in the foreground until Ctrl-C or SIGTERM, then stop the daemon")
    st.set_defaults(run="raylite.cli.start:run")


def _job_parser(sub) -> None:
    job = sub.add_parser("job", help="submit a command to run on the cluster's head, and follow it",
                         description="Jobs, as Ray's `ray job`: the head runs the entrypoint "
                                     "command with the cluster's address set and keeps its log.")
    jobs = job.add_subparsers(dest="job_command", required=True, metavar="JOB_COMMAND")

    def common(p) -> None:
        p.add_argument("--address", metavar="HOST:PORT", type=_address,
                       help="the cluster's head, or ray://HOST:PORT (its Ray client port) "
                            "(default: $RAYLITE_ADDRESS, $RAY_ADDRESS, else the one `raylite "
                            "start` recorded here)")
        p.add_argument("--temp-dir", help=_TEMP_HELP)

    sm = jobs.add_parser("submit", help="run ENTRYPOINT on the head; follow its log unless --no-wait",
                         usage="raylite job submit [options] -- ENTRYPOINT...",
                         description="Submit a job: the head runs ENTRYPOINT (a shell command, "
                                     "after --) and this command prints its log until it ends "
                                     "(exit 0 if it succeeded, 1 if not).")
    common(sm)
    sm.add_argument("--submission-id", help="the job's id (default: a new one)")
    sm.add_argument("--working-dir", metavar="DIR",
                    help="a local directory uploaded for the job: the cwd of its entrypoint "
                         "and of its tasks and actors, first on their import path")
    sm.add_argument("--runtime-env-json", metavar="JSON",
                    help='runtime_env as JSON: {"working_dir", "py_modules", "excludes", "env_vars", '
                         '"pip", "worker_process_setup_hook", "config"}')
    sm.add_argument("--metadata-json", metavar="JSON", help="metadata kept with the job (JSON)")
    sm.add_argument("--entrypoint-num-cpus", type=float, metavar="N")
    sm.add_argument("--entrypoint-num-gpus", type=float, metavar="N")
    sm.add_argument("--entrypoint-memory", type=int, metavar="BYTES")
    sm.add_argument("--entrypoint-resources", metavar="JSON", help="custom resources (JSON)")
    sm.add_argument("--no-wait", action="store_true",
                    help="print the submission id and return at once")
    sm.add_argument("entrypoint", nargs=argparse.REMAINDER, help="the command, after --")
    sm.set_defaults(run="raylite.cli.job:run_submit")
    for name, text in (("status", "a job's status and message"),
                       ("logs", "a job's log (what its entrypoint printed)"),
                       ("stop", "stop a job: SIGTERM to its processes, SIGKILL after a grace "
                                "period"),
                       ("delete", "forget an ended job and its files (its log stays)")):
        p = jobs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        common(p)
        p.add_argument("submission_id", metavar="SUBMISSION_ID")
        if name == "logs":
            p.add_argument("-f", "--follow", action="store_true",
                           help="keep printing until the job ends")
        if name == "stop":
            p.add_argument("--no-wait", action="store_true",
                           help="return without waiting for the job to end")
        p.set_defaults(run=f"raylite.cli.job:run_{name}")
    ls = jobs.add_parser("list", help="every job submitted to the cluster")
    common(ls)
    ls.set_defaults(run="raylite.cli.job:run_list")


def _state_parsers(sub) -> None:
    kinds = ("actors", "tasks", "objects", "nodes", "workers", "jobs", "placement-groups")

    def common(p, fmt: bool = True) -> None:
        p.add_argument("--address", metavar="HOST:PORT", type=_address,
                       help="the cluster, or ray://HOST:PORT (its head's Ray client port) "
                            "(default: $RAYLITE_ADDRESS, else the head `raylite start` recorded "
                            "here)")
        p.add_argument("--temp-dir", help=_TEMP_HELP)
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
        if fmt:
            p.add_argument("--format", choices=("table", "json", "yaml"), default="table")

    ls = sub.add_parser("list", help="actors, tasks, objects, nodes, workers, jobs of a cluster",
                        description="List one kind of a running cluster's state, in Ray's field "
                                    "names. Filters apply before the limit.")
    ls.add_argument("kind", choices=kinds)
    ls.add_argument("--filter", action="append", metavar="KEY=VALUE",
                    help="keep rows whose KEY is VALUE (KEY!=VALUE: is not); repeatable; "
                         "strings compare case-insensitively")
    ls.add_argument("--limit", type=int, default=100,
                    help="at most this many rows (default 100; -1: all)")
    ls.add_argument("--detail", action="store_true", help="every field, not the main ones")
    common(ls)
    ls.set_defaults(run="raylite.cli.state:run_list")
    gt = sub.add_parser("get", help="one actor, task, object, node, worker or job by id")
    gt.add_argument("kind", choices=kinds)
    gt.add_argument("id")
    common(gt)
    gt.set_defaults(run="raylite.cli.state:run_get")
    sm = sub.add_parser("summary", help="tasks by function, actors by class, objects by where")
    sm.add_argument("kind", choices=("tasks", "actors", "objects"))
    common(sm)
    sm.set_defaults(run="raylite.cli.state:run_summary")
    lg = sub.add_parser("logs", help="the cluster's log files on this machine, or one of them",
                        description="Without a file: list the log files (daemon logs, workers' "
                                    "output, submitted jobs' logs). With one: print its last "
                                    "lines. With no cluster running: the last stopped one's.")
    lg.add_argument("filename", nargs="?", help="a file `raylite logs` listed")
    lg.add_argument("--job-id", help="a submitted job's log (its submission id)")
    lg.add_argument("--actor-id", help="the output of the worker hosting this actor")
    lg.add_argument("--pid", type=int, help="the output of the worker with this pid")
    lg.add_argument("--err", action="store_true", help="with --pid/--actor-id/--task-id: stderr")
    lg.add_argument("--task-id", help="what this task printed (its latest attempt; with --err: "
                                      "to stderr)")
    lg.add_argument("--attempt", type=int, default=None,
                    help="with --task-id: this attempt (0 for the first try)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    lg.add_argument("--tail", type=int, default=1000, help="last N lines (default 1000; -1: all)")
    common(lg, fmt=False)
    lg.set_defaults(run="raylite.cli.state:run_logs")
    tl = sub.add_parser("timeline", help="the cluster's tasks as a Chrome trace (Perfetto)",
                        description="Write every task the cluster's task-event store keeps as "
                                    "Chrome trace JSON: one row per worker, each task a span. "
                                    "Open it in https://ui.perfetto.dev or chrome://tracing.")
    tl.add_argument("--output", metavar="FILE",
                    help="where to write it (default: raylite-timeline-<time>.json in the "
                         "current directory); '-' writes to stdout")
    common(tl, fmt=False)
    tl.set_defaults(run="raylite.cli.state:run_timeline")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="raylite", description="raylite cluster commands")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _start_parser(sub)

    sp = sub.add_parser("stop", help="stop what `raylite start` started on this machine",
                        description="Stop the head and nodes recorded under the temp dir: "
                                    "SIGTERM, up to 5 s to exit, then SIGKILL of what is left "
                                    "(by recorded pid and process group, never by name).")
    sp.add_argument("--force", action="store_true", help="SIGKILL at once, then clean up")
    sp.add_argument("--temp-dir", help=_TEMP_HELP)
    sp.set_defaults(run="raylite.cli.stop:run")

    for name, target, text in (
            ("status", "raylite.cli.status:run_status", "nodes, resources, workers, actors, pending work"),
            ("memory", "raylite.cli.status:run_memory", "live objects and the object store")):
        p = sub.add_parser(name, help=text, description=f"Show {text} of a running cluster.")
        p.add_argument("--address", metavar="HOST:PORT", type=_address,
                       help="the cluster's head, or ray://HOST:PORT (its Ray client port) "
                            "(default: the one `raylite start` recorded here)")
        p.add_argument("--temp-dir", help=_TEMP_HELP)
        if name == "status":
            p.add_argument("--metrics", action="store_true",
                           help="also print the user metrics (raylite.util.metrics) the GCS holds")
        p.set_defaults(run=target)

    from raylite.dashboard.__main__ import parser as dashboard_parser

    sub.add_parser("dashboard", parents=[dashboard_parser()], add_help=False,
                   help="serve a read-only web UI of a running cluster (needs its token)",
                   description=dashboard_parser().description).set_defaults(
        run="raylite.cli.dashboard:run")
    _job_parser(sub)
    _state_parsers(sub)

    rp = sub.add_parser(
        "run", help="run a Ray program unchanged: `import ray` resolves to raylite",
        description="Run a Python script (or -m module) whose `import ray` and `import ray.*` "
                    "resolve to raylite and its modules, for this run only (and the workers of a "
                    "cluster its ray.init() starts). Arguments after the script are the script's.")
    rp.add_argument("-m", dest="module", metavar="MODULE", help="run a module, as python -m")
    rp.add_argument("script", nargs="?", help="the program to run")
    rp.add_argument("args", nargs=argparse.REMAINDER, help="the program's arguments")
    rp.set_defaults(run="raylite.cli.run:run")

    mb = sub.add_parser("microbenchmark", help="time raylite's core operations")
    mb.add_argument("--window", type=float, default=1.0, help="seconds per measurement")
    mb.add_argument("--rounds", type=int, default=3)
    mb.add_argument("--num-cpus", type=int)
    mb.add_argument("--only", help="run only the cases whose name contains this text")
    mb.set_defaults(run="raylite.cli.microbenchmark:main")
    return ap


def main(argv: list[str] | None = None) -> None:
    from raylite._private_files import NotPrivateError

    args = build_parser().parse_args(argv)
    if args.command == "start" and args.port is None:
        args.port = 6380 if args.head else 0
    module, _, func = args.run.partition(":")
    try:
        code = getattr(importlib.import_module(module), func)(args)
        sys.stdout.flush()
    except NotPrivateError as e:  # a temp dir, record or session that is not ours alone
        print(f"raylite {args.command}: {e}", file=sys.stderr)
        code = 1
    except BrokenPipeError:  # `raylite status | head`: the reader left, which is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
