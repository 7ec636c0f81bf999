"""What task events cost: the same calls with events on and off, interleaved in one sitting.

    python benchmarks/task_events_bench.py [--rounds 8] [--window 1.0] [--local] [--only TEXT]

One cluster (2 CPUs), one driver: `tasks one at a time` (get(noop.remote()) in a loop, the
shared bench's tasks_sync_per_s), the same with 1000 in flight, and actor calls one at a time
and 1000 in flight, each measured with events on and with `.options(enable_task_events=False)`,
in calls per second and in CPU time per call summed over the driver, the head daemon (where
the GCS's store is) and the workers (less at the mercy of a loaded machine than the rate).
The two variants alternate window by window (their order flipping every round) on the same
workers, so drift in the machine's speed hits both; the ratio on/off is given per round, and
its median and range. Not a test: numbers go in docs/performance.md.
"""
from __future__ import annotations

import argparse
import statistics
import time


def cpu_seconds(procs) -> float:
    """User + system CPU time of the driver, the head daemon and every process under it."""
    total = 0.0
    for p in procs():
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # a worker that just exited
            pass
    return total


def rate(fn, window: float, batch: int, procs) -> tuple[float, float]:
    """(calls per second, CPU microseconds per call over every process of the cluster)."""
    fn()
    n, cpu0, start = 0, cpu_seconds(procs), time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= window:
            return n * batch / elapsed, (cpu_seconds(procs) - cpu0) * 1e6 / (n * batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--window", type=float, default=1.0, help="seconds per measurement")
    ap.add_argument("--local", action="store_true", help="local mode instead of a cluster")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = ap.parse_args()

    import psutil

    import raylite

    raylite.init(num_cpus=2, local_mode=args.local)
    me = psutil.Process()
    head = getattr(raylite._runtime.current(), "_proc", None)
    head = psutil.Process(head.pid) if head is not None else None

    def procs():
        return [me] + ([head] + head.children(recursive=True) if head is not None else [])

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
    print(f"{'case':30s} {'on /s':>8s} {'off /s':>8s} {'on/off median':>14s} {'range':>12s} "
          f"{'cpu us/call on':>15s} {'off':>6s}")
    for name, (on, off, batch) in cases.items():
        if args.only not in name:
            continue
        ratios, ons, offs, cpu_on, cpu_off = [], [], [], [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                x, cx = rate(on, args.window, batch, procs)
                y, cy = rate(off, args.window, batch, procs)
            else:
                y, cy = rate(off, args.window, batch, procs)
                x, cx = rate(on, args.window, batch, procs)
            ons.append(x)
            offs.append(y)
            cpu_on.append(cx)
            cpu_off.append(cy)
            ratios.append(x / y)
        print(f"{name:30s} {statistics.median(ons):8.0f} {statistics.median(offs):8.0f} "
              f"{statistics.median(ratios):14.3f} {min(ratios):5.2f}-{max(ratios):.2f} "
              f"{statistics.median(cpu_on):15.1f} {statistics.median(cpu_off):6.1f}", flush=True)
    time.sleep(0.3)
    from raylite.util.state import list_tasks

    kept = list_tasks(limit=1, raise_on_missing_output=False)
    print(f"task records kept: {kept.total} (dropped by the bound: {kept.dropped})")
    raylite.shutdown()


if __name__ == "__main__":
    main()
