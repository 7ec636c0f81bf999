#!/usr/bin/env python3
"""What runtime_env inheritance costs per task: submission with and without an env.

    python benchmarks/runtime_env_bench.py [--src OTHER/src] [--rounds 3] [--tasks 2000]

Each side (this checkout's raylite, and with --src another checkout's, e.g. the commit
before a change, exported with `git archive`) runs in a process of its own, the sides in
turn `--rounds` times (so drift in the machine's speed hits both), on a cluster it starts:

    driver        f.remote() from the driver, no runtime_env anywhere: µs per submission
    driver_job    the same with init(runtime_env={"env_vars": ...}) (every task gets the job's)
    nested        a task with env_vars submits `tasks` children (which inherit them): µs per
                  submission inside the worker
    template      ClusterRuntime._template(f, options) alone, driver, no env: ns per call

Submission is timed alone (the refs are collected after); the median of the rounds kept.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def noop():
    return 0


def per_submission(f, n: int) -> float:
    """The best of 3 of µs per f.remote() (submission alone; the refs collected after)."""
    import raylite

    raylite.get([f.remote() for _ in range(min(n, 200))])  # warm: leases, workers, templates
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        refs = [f.remote() for _ in range(n)]
        best.append((time.perf_counter() - t0) / n * 1e6)
        raylite.get(refs)
    return min(best)


def run_side(tasks: int) -> dict:
    import raylite

    out = {}
    for job_env in (None, {"env_vars": {"BENCH_JOB": "1"}}):
        raylite.init(num_cpus=2, runtime_env=job_env)
        f = raylite.remote(noop)
        out["driver_job" if job_env else "driver"] = per_submission(f, tasks)
        if job_env is None:
            rt = raylite._runtime.current()
            opts = f._options
            n = 200_000
            t0 = time.perf_counter()
            for _ in range(n):
                rt._template(f, opts)
            out["template"] = (time.perf_counter() - t0) / n * 1e9

            @raylite.remote(runtime_env={"env_vars": {"BENCH_PARENT": "1"}})
            def parent(n):
                return per_submission(raylite.remote(noop), n)

            out["nested"] = raylite.get(parent.remote(tasks))
        raylite.shutdown()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", help="another checkout's src/ to compare with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--side", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.side:
        print(json.dumps(run_side(a.tasks)))
        return
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    sides = {"this": here, **({"other": os.path.abspath(a.src)} if a.src else {})}
    got: dict = {s: [] for s in sides}
    for _ in range(a.rounds):
        for side, src in sides.items():
            env = dict(os.environ, PYTHONPATH=src)
            r = subprocess.run([sys.executable, __file__, "--side", side, "--tasks", str(a.tasks)],
                               env=env, capture_output=True, text=True, timeout=600)
            if r.returncode:
                sys.exit(f"{side} failed:\n{r.stderr[-2000:]}")
            got[side].append(json.loads(r.stdout.strip().splitlines()[-1]))
    keys = ("driver", "driver_job", "nested", "template")
    units = {"driver": "µs", "driver_job": "µs", "nested": "µs", "template": "ns"}
    print(f"{'':12}" + "".join(f"{s:>12}" for s in sides) + ("       other/this" if a.src else ""))
    for k in keys:
        med = {s: statistics.median(r[k] for r in got[s]) for s in sides}
        row = f"{k:12}" + "".join(f"{med[s]:>10.2f}{units[k]:>2}" for s in sides)
        if a.src:
            row += f"{med['other'] / med['this']:>17.2f}"
        print(row)


if __name__ == "__main__":
    main()
