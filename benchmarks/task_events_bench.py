"""What task events cost: the same calls with events on and off, interleaved in one sitting.

    python benchmarks/task_events_bench.py [--rounds 8] [--window 1.0] [--local]

One cluster (2 CPUs), one driver: `tasks one at a time` (get(noop.remote()) in a loop, the
shared bench's tasks_sync_per_s), the same with 1000 in flight, and actor calls one at a time
and 1000 in flight, each measured with events on and with `.options(enable_task_events=False)`.
The two variants alternate window by window (their order flipping every round) on the same
workers, so drift in the machine's speed hits both; the ratio on/off is given per round, and
its median and range. Not a test: numbers go in docs/performance.md.
"""
from __future__ import annotations

import argparse
import statistics
import time


def rate(fn, window: float, batch: int = 1) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= window:
            return n * batch / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--window", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--local", action="store_true", help="local mode instead of a cluster")
    args = ap.parse_args()

    import raylite

    raylite.init(num_cpus=2, local_mode=args.local)

    @raylite.remote
    def noop():
        return 0

    @raylite.remote
    class Actor:
        def noop(self):
            return 0

    a = Actor.remote()
    quiet_task = noop.options(enable_task_events=False)
    quiet_call = a.noop.options(enable_task_events=False)
    cases = {
        "tasks one at a time": (lambda: raylite.get(noop.remote()),
                                lambda: raylite.get(quiet_task.remote()), 1),
        "tasks, 1000 in flight": (lambda: raylite.get([noop.remote() for _ in range(1000)]),
                                  lambda: raylite.get([quiet_task.remote() for _ in range(1000)]),
                                  1000),
        "actor calls one at a time": (lambda: raylite.get(a.noop.remote()),
                                      lambda: raylite.get(quiet_call.remote()), 1),
        "actor calls, 1000 in flight": (
            lambda: raylite.get([a.noop.remote() for _ in range(1000)]),
            lambda: raylite.get([quiet_call.remote() for _ in range(1000)]), 1000),
    }
    raylite.get([noop.remote() for _ in range(200)])
    print(f"{'case':30s} {'on /s':>10s} {'off /s':>10s} {'on/off median':>14s} {'range':>14s}")
    for name, (on, off, batch) in cases.items():
        ratios, ons, offs = [], [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                x = rate(on, args.window, batch)
                y = rate(off, args.window, batch)
            else:
                y = rate(off, args.window, batch)
                x = rate(on, args.window, batch)
            ons.append(x)
            offs.append(y)
            ratios.append(x / y)
        print(f"{name:30s} {statistics.median(ons):10.0f} {statistics.median(offs):10.0f} "
              f"{statistics.median(ratios):14.3f} {min(ratios):6.3f}-{max(ratios):.3f}",
              flush=True)
    time.sleep(0.3)
    from raylite.util.state import list_tasks

    kept = list_tasks(limit=1, raise_on_missing_output=False)
    print(f"task records kept: {kept.total} (dropped by the bound: {kept.dropped})")
    raylite.shutdown()


if __name__ == "__main__":
    main()
