"""Task events' cost as the shared bench sees it, many times over: `tasks one at a time` in a
fresh driver with events on and a fresh driver with events off, alternating.

    python benchmarks/task_events_sittings.py [--sittings 6] [--windows 3] [--other SRC]

Each sitting is a new process doing what `../shared/bench/core_bench.py` does before its
`tasks_sync_per_s` row (init with 2 CPUs, 50 tasks, a second's sleep) and then `--windows`
windows of 1.5 s of `get(noop.remote())`; the first window is the bench's own measure. One
such sitting swings by a few points, so the means over sittings are what this prints:
events on over events off, for the first windows and for all of them. `--other SRC` adds a
sitting with events on of another checkout (its `src` directory on PYTHONPATH) to each
round, to compare two versions of the code under the same measure. Not a test: numbers go in
docs/performance.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

SITTING = """
import sys, time
import raylite as rt
rt.init(num_cpus=2, enable_task_events=sys.argv[1] == "on")

@rt.remote
def noop(*args):
    return 0

rt.get([noop.remote() for _ in range(50)])
time.sleep(1.0)

def rate(seconds):
    rt.get(noop.remote())
    n, start = 0, time.perf_counter()
    while True:
        rt.get(noop.remote())
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed

print(" ".join(str(rate(1.5)) for _ in range(int(sys.argv[2]))))
rt.shutdown()
"""


def sitting(events: str, windows: int, src: str | None = None) -> list[float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SITTING, events, str(windows)], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sittings", type=int, default=6)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--other", help="another checkout's src directory: its sittings, events on")
    args = ap.parse_args()
    kinds = [("on", None), ("off", None)] + ([("other on", args.other)] if args.other else [])
    got: dict = {k: [] for k, _ in kinds}
    for i in range(args.sittings):
        for name, src in (kinds if i % 2 == 0 else kinds[::-1]):
            got[name].append(sitting(name.split()[-1], args.windows, src))
            print(f"{name:9s} " + " ".join(f"{x:8.0f}" for x in got[name][-1]), flush=True)
    off_first = statistics.mean(r[0] for r in got["off"])
    off_all = statistics.mean(x for r in got["off"] for x in r)
    for name, _ in kinds:
        first = statistics.mean(r[0] for r in got[name])
        every = statistics.mean(x for r in got[name] for x in r)
        print(f"{name:9s} first windows {first:8.0f}/s ({first / off_first:.3f} of off), "
              f"all {every:8.0f}/s ({every / off_all:.3f})")


if __name__ == "__main__":
    main()
