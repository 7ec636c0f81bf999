#!/usr/bin/env python3
"""The state API and CLI on a loaded cluster: how long a listing takes.

    python benchmarks/state_bench.py [--finished 100000] [--objects 10000] [--tasks 1000]
                                     [--rounds 5]

Starts a head (`raylite start`, 2 CPUs, a private temp dir), then a driver (this process,
init(address=...)) that runs `--finished` no-op tasks to the end, puts `--objects` small
objects and submits `--tasks` tasks that block until released (2 run, the rest wait for a
CPU), and times, median of `--rounds`:

    cli list tasks      `raylite list tasks --filter state=FINISHED` and `... state=RUNNING`
                        (a fresh process each time: the command as a user runs it,
                        interpreter start and imports included)
    cli --help          `raylite --help` (the floor: interpreter start and argparse)
    list_tasks          list_tasks(...) in the driver: filtered by state, unfiltered, one page
                        of 100 from the 50,000th match on (the store's offset), get_task
    summarize_tasks     summarize_tasks() (counted in the GCS)
    list_objects        list_objects() (the default limit 100: filters run over all of them)
    list_objects all    list_objects(limit=None)
    summarize_objects   summarize_objects()

Tasks come from the GCS's task-event store, filtered and limited there: no owner is asked.
Objects come from their owners: a listing in which the driver did not answer the daemon within
its bound (the daemon's OWNER_WAIT_S) counts as partial, and the count of partial answers is
printed. The head daemon's RSS is printed before the finished tasks and after (the store's
memory for them).

Then releases the tasks, shuts the driver down and stops the head by its recorded pid.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings


def _rl(temp: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", temp],
                          capture_output=True, text=True, timeout=120)


def _median(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--finished", type=int, default=100_000)
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=1_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    temp = tempfile.mkdtemp(prefix="raylite-state-bench-")
    out = _rl(temp, "start", "--head", "--port", "0", "--num-cpus", "2")
    if out.returncode != 0:
        sys.exit(f"raylite start failed: {out.stdout}{out.stderr}")
    address = out.stdout.split(" started at ")[1].split()[0]
    import raylite
    from raylite.util import state

    try:
        raylite.init(address=address, _temp_dir=temp)
        gate = os.path.join(temp, "release")

        @raylite.remote
        def blocked(path):
            while not os.path.exists(path):
                time.sleep(0.05)

        import psutil

        head = psutil.Process(int(open(os.path.join(temp, "raylite_current_cluster")).read()
                                  .split()[1]))
        rss0 = head.memory_info().rss

        @raylite.remote
        def noop():
            return 0

        t0 = time.perf_counter()
        for i in range(0, args.finished, 10_000):
            raylite.get([noop.remote() for _ in range(min(10_000, args.finished - i))])
        run_s = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while state.list_tasks(filters=[("state", "=", "FINISHED"), ("name", "=", "noop")],
                               limit=0, raise_on_missing_output=False).total < args.finished:
            assert time.monotonic() < deadline, "the finished tasks did not all arrive"
            time.sleep(0.2)
        rss1 = head.memory_info().rss
        refs = [raylite.put(i) for i in range(args.objects)]
        tasks = [blocked.remote(gate) for _ in range(args.tasks)]
        warnings.simplefilter("ignore")  # the limit's warning, on every listing of 10,000
        partial = []

        def timed(fn, **kw):
            def run():
                got = fn(raise_on_missing_output=False, **kw)
                partial.append(bool(got["missing"] if isinstance(got, dict) else got.missing))
                return got
            return run

        deadline = time.monotonic() + 60
        while len(timed(state.list_tasks, filters=[("state", "=", "RUNNING")])()) < 2:
            assert time.monotonic() < deadline, "the tasks did not start"
            time.sleep(0.1)
        n_tasks = timed(state.list_tasks, limit=0)().total
        some = state.list_tasks(limit=1, raise_on_missing_output=False)[0].task_id
        n_objects = len(timed(state.list_objects, limit=None)())
        partial.clear()
        cli = _rl(temp, "list", "tasks", "--filter", "state=RUNNING")
        assert cli.returncode == 0 and (cli.stdout.count("RUNNING") == 2 or
                                        "no answer in time" in cli.stderr), cli.stdout + cli.stderr
        results = {
            "cli list tasks --filter state=FINISHED": _median(
                lambda: _rl(temp, "list", "tasks", "--filter", "state=FINISHED"), args.rounds),
            "cli list tasks --filter state=RUNNING": _median(
                lambda: _rl(temp, "list", "tasks", "--filter", "state=RUNNING"), args.rounds),
            "cli --help": _median(lambda: _rl(temp, "--help"), args.rounds),
            "list_tasks(state=RUNNING)": _median(
                timed(state.list_tasks, filters=[("state", "=", "RUNNING")]), args.rounds),
            "list_tasks(state=FINISHED)": _median(
                timed(state.list_tasks, filters=[("state", "=", "FINISHED")]), args.rounds),
            "list_tasks()": _median(timed(state.list_tasks), args.rounds),
            "list_tasks(state!=FINISHED, limit=None)": _median(
                timed(state.list_tasks, filters=[("state", "!=", "FINISHED")], limit=None),
                args.rounds),
            "get_task(id)": _median(lambda: state.get_task(some), args.rounds),
            "summarize_tasks()": _median(timed(state.summarize_tasks), args.rounds),
            "list_objects()": _median(timed(state.list_objects), args.rounds),
            "list_objects(limit=None)": _median(timed(state.list_objects, limit=None),
                                                args.rounds),
            "summarize_objects()": _median(timed(state.summarize_objects), args.rounds),
        }
        print(f"cluster: 2 CPUs; {args.finished} tasks run to the end in {run_s:.1f} s, then "
              f"{args.tasks} in flight; the store holds {n_tasks} task records; head daemon RSS "
              f"{rss0 / 2**20:.1f} MiB before the finished tasks, {rss1 / 2**20:.1f} MiB after")
        print(f"{n_objects} objects listed (median of {args.rounds}; {sum(partial)} of "
              f"{len(partial)} API answers partial)")
        for name, secs in results.items():
            print(f"  {name:<40s} {secs * 1000:8.1f} ms")
        open(gate, "w").close()
        del tasks, refs
    finally:
        raylite.shutdown()
        _rl(temp, "stop")
        _rl(temp, "stop", "--force")


if __name__ == "__main__":
    main()
