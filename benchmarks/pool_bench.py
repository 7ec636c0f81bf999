#!/usr/bin/env python3
"""Pool.map: raylite.util.multiprocessing against multiprocessing.Pool (and Ray's Pool).

    python benchmarks/pool_bench.py [--ray /tmp/rayenv/bin/python] [--processes 2] [--rounds 2]

Each side runs in its own process, one after the other, `--rounds` times in
turn (so drift in the machine's speed hits every side), in one sitting:

    tiny   Pool.map(inc, range(10_000))          default chunksize; items per second
    list   Pool.map(inc, items), items = list(range(10_000)) made beforehand: the same map over
           a list (raylite cuts a range into ranges, so that row pickles no item; this one
           pickles and unpickles every item both ways, as the other pools do for both)
    cpu    CPU time of every process of the side (the driver, its daemons, its workers)
           per tiny map: the work done, which the machine's load does not change much
    sleepy Pool.map(sleep_10ms, range(100))      default chunksize; seconds (ideal: 100 * 10 ms / processes)
    start  Pool(processes) until its first map returns

Every pool is warmed by one map first; each timed workload is repeated and the
median kept. Prints a table with the ratios (> 1: raylite is better).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TINY_ITEMS, SLEEPY_ITEMS, SLEEP = 10_000, 100, 0.01
CPU_MAPS = 200


def inc(x):
    return x + 1


def sleep_10ms(x):
    time.sleep(SLEEP)
    return x


def run_side(side: str, processes: int, reps: int) -> dict:
    """Runs in the child: times one side's pool and returns the figures."""
    if side == "stdlib":
        from multiprocessing import Pool

        def make():
            return Pool(processes)
    elif side == "raylite":
        import raylite
        from raylite.util.multiprocessing import Pool

        raylite.init(num_cpus=processes)

        def make():
            return Pool(processes)
    else:
        import ray
        from ray.util.multiprocessing import Pool

        ray.init(num_cpus=processes, include_dashboard=False, log_to_driver=False)

        def make():
            return Pool(processes)

    t = time.perf_counter()
    pool = make()
    assert pool.map(inc, range(10)) == list(range(1, 11))
    start = time.perf_counter() - t
    tiny, listed, sleepy = [], [], []
    items = list(range(TINY_ITEMS))
    for _ in range(reps):
        t = time.perf_counter()
        out = pool.map(inc, range(TINY_ITEMS))
        tiny.append(TINY_ITEMS / (time.perf_counter() - t))
        assert out[-1] == TINY_ITEMS
        t = time.perf_counter()
        out = pool.map(inc, items)
        listed.append(TINY_ITEMS / (time.perf_counter() - t))
        assert out[-1] == TINY_ITEMS
    cpu = _cpu_seconds()  # over CPU_MAPS maps: the clock ticks every 10 ms per process
    for _ in range(CPU_MAPS):
        pool.map(inc, range(TINY_ITEMS))
    cpu = (_cpu_seconds() - cpu) / CPU_MAPS
    for _ in range(max(reps // 2, 2)):
        t = time.perf_counter()
        assert pool.map(sleep_10ms, range(SLEEPY_ITEMS)) == list(range(SLEEPY_ITEMS))
        sleepy.append(time.perf_counter() - t)
    pool.terminate()
    return {"tiny": statistics.median(tiny), "list": statistics.median(listed), "cpu": cpu,
            "sleepy": statistics.median(sleepy), "start": start}


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and every process under it."""
    import psutil

    total = 0.0
    for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def child(side: str, processes: int, reps: int, python: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.json")
        code = (f"import json; import pool_bench as b; r = b.run_side({side!r}, {processes}, {reps});"
                f"open({out!r}, 'w').write(json.dumps(r))")
        here = os.path.dirname(os.path.abspath(__file__))  # every side's workers import this module
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=900,
                              cwd=d, env=env)
        if proc.returncode != 0:
            sys.exit(f"{side} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ray", help="a Python with Ray installed, to include Ray's Pool")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sides = {"stdlib": sys.executable, "raylite": sys.executable}
    if args.ray:
        sides["ray"] = os.path.abspath(args.ray)  # each side runs in a temp dir
    got: dict = {s: [] for s in sides}
    for _ in range(args.rounds):
        for side, python in sides.items():
            got[side].append(child(side, args.processes, args.reps, python))
            print(f"  {side}: {got[side][-1]}", file=sys.stderr, flush=True)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in got.items()}
    rows = [("tiny", f"Pool.map of {TINY_ITEMS:,} tiny items", "{:,.0f} items/s", True),
            ("list", "... the same items in a list", "{:,.0f} items/s", True),
            ("cpu", "CPU time per 10,000-item map, all processes", "{:.4f} s", False),
            ("sleepy", f"Pool.map of {SLEEPY_ITEMS} items of 10 ms", "{:.3f} s", False),
            ("start", "Pool() until its first map returns", "{:.3f} s", False)]
    head = ["workload", "multiprocessing.Pool", "raylite"] + (["Ray 2.60"] if args.ray else [])
    head += ["raylite / stdlib"] + (["raylite / Ray"] if args.ray else [])
    print(f"processes={args.processes}, {args.rounds} rounds x {args.reps} reps, medians; "
          "ratios > 1: raylite is better\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" + "---:|" * (len(head) - 1))
    for key, label, fmt, higher in rows:
        vals = [med[s][key] for s in sides]
        cells = [label] + [fmt.format(v) for v in vals]
        ratio = (lambda a, b: a / b) if higher else (lambda a, b: b / a)
        cells.append(f"{ratio(med['raylite'][key], med['stdlib'][key]):.2f}x")
        if args.ray:
            cells.append(f"{ratio(med['raylite'][key], med['ray'][key]):.1f}x")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
