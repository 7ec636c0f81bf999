#!/usr/bin/env python3
"""The state API and CLI on a loaded cluster: how long a listing takes.

    python benchmarks/state_bench.py [--objects 10000] [--tasks 1000] [--rounds 5]

Starts a head (`raylite start`, 2 CPUs, a private temp dir), then a driver (this process,
init(address=...)) that puts `--objects` small objects and submits `--tasks` tasks that block
until released (2 run, the rest wait for a CPU), and times, median of `--rounds`:

    cli list tasks      `raylite list tasks --filter state=RUNNING` (a fresh process each time:
                        the command as a user runs it, interpreter start and imports included)
    cli --help          `raylite --help` (the floor: interpreter start and argparse)
    list_tasks          list_tasks(filters=[("state", "=", "RUNNING")]) in the driver
    list_objects        list_objects() (the default limit 100: filters run over all of them)
    list_objects all    list_objects(limit=None)
    summarize_objects   summarize_objects()

Every listing passes raise_on_missing_output=False; a listing in which the driver did not answer
the daemon within its bound (the daemon's OWNER_WAIT_S) counts as partial, and the count of
partial answers is printed: past some size an owner's answer takes longer than that bound.

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
        n_tasks = len(timed(state.list_tasks, limit=None)())
        n_objects = len(timed(state.list_objects, limit=None)())
        partial.clear()
        cli = _rl(temp, "list", "tasks", "--filter", "state=RUNNING")
        assert cli.returncode == 0 and (cli.stdout.count("RUNNING") == 2 or
                                        "no answer in time" in cli.stderr), cli.stdout + cli.stderr
        results = {
            "cli list tasks --filter state=RUNNING": _median(
                lambda: _rl(temp, "list", "tasks", "--filter", "state=RUNNING"), args.rounds),
            "cli --help": _median(lambda: _rl(temp, "--help"), args.rounds),
            "list_tasks(state=RUNNING)": _median(
                timed(state.list_tasks, filters=[("state", "=", "RUNNING")]), args.rounds),
            "list_objects()": _median(timed(state.list_objects), args.rounds),
            "list_objects(limit=None)": _median(timed(state.list_objects, limit=None),
                                                args.rounds),
            "summarize_objects()": _median(timed(state.summarize_objects), args.rounds),
        }
        print(f"cluster: 2 CPUs; {n_tasks} tasks in flight, {n_objects} objects listed "
              f"(median of {args.rounds}; {sum(partial)} of {len(partial)} API answers partial)")
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
