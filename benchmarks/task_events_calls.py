"""Which calls task events slow down: `get(noop.remote())` in a loop with events on, each call
timed and tagged by what the driver did for task events during it.

    python benchmarks/task_events_calls.py [--seconds 12] [--part N]

A call is "packed" when the driver packed whole records while it waited for the reply
(cluster_tasks.pack_task_events, PART of them at a time), "sent" when the sender thread
began a batch during it (send_task_events), else "plain". A packing or a send that does not
hide in the wait shows as those calls taking longer than a plain one; the excess times how
often it happens, per task, is its cost to the loop. `--part` sets PART for this run (to
compare sizes). Since the twelfth session the loop's tasks (no arguments to wait for) are
told whole by their workers (_core/whole_runs.py), so the driver packs none of theirs and
no call is "packed": this now times the sender's batches only. Not a test: numbers go in
docs/performance.md.
"""
from __future__ import annotations

import argparse
import statistics
import time

import raylite
from raylite._runtime import cluster_objects, cluster_tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--part", type=int, default=None, help="records packed at a time")
    args = ap.parse_args()
    if args.part:
        cluster_objects.PART = args.part
    tags = {"pack": False, "send": False}
    cls = cluster_tasks.TaskSubmission
    pack, send = cls.pack_task_events, cls.send_task_events

    def tagged_pack(self):
        tags["pack"] = True
        pack(self)

    def tagged_send(self):
        tags["send"] = True
        send(self)

    cls.pack_task_events, cls.send_task_events = tagged_pack, tagged_send
    raylite.init(num_cpus=2)
    try:
        @raylite.remote
        def noop():
            return None

        for _ in range(2000):
            raylite.get(noop.remote())
        calls: dict = {"plain": [], "packed": [], "sent": []}
        clock = time.perf_counter
        end = clock() + args.seconds
        while clock() < end:
            tags["pack"] = tags["send"] = False
            t0 = clock()
            raylite.get(noop.remote())
            took = clock() - t0
            calls["sent" if tags["send"] else "packed" if tags["pack"] else "plain"].append(took)
    finally:
        raylite.shutdown()
    n = sum(map(len, calls.values()))
    plain = statistics.median(calls["plain"])
    print(f"PART {cluster_objects.PART}, {n} calls, a plain call's median {plain * 1e6:.1f} us")
    for kind in ("packed", "sent"):
        times = calls[kind]
        if not times:
            print(f"{kind:>7}: none")
            continue
        excess = sum(t - plain for t in times) / n
        print(f"{kind:>7}: {len(times)} calls, median {statistics.median(times) * 1e6:.1f} us, "
              f"{excess * 1e6:.2f} us a task over plain calls")


if __name__ == "__main__":
    main()
