#!/usr/bin/env python3
"""Scale checks for docs/performance.md: 100,000 queued tasks, 1,000 actors, a 4 GB object.

    python benchmarks/scale.py [--tasks 100000] [--actors 1000] [--gb 4] [--store-gb 2]

Each line prints what was done and how long it took; nothing is asserted
beyond the results being right. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--actors", type=int, default=1000)
    ap.add_argument("--gb", type=float, default=4.0)
    ap.add_argument("--store-gb", type=float, default=2.0,
                    help="object_store_memory for the big-object check (smaller than --gb spills)")
    args = ap.parse_args()
    import numpy as np

    import raylite as ray

    ray.init(num_cpus=2)

    @ray.remote
    def inc(x):
        return x + 1

    t = time.perf_counter()
    refs = [inc.remote(i) for i in range(args.tasks)]
    submitted = time.perf_counter() - t
    total = sum(ray.get(refs))
    assert total == sum(range(1, args.tasks + 1))
    print(f"{args.tasks:,} queued tasks: submitted in {submitted:.1f} s, all done in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    del refs

    @ray.remote
    class A:
        def __init__(self, i):
            self.i = i

        def get(self):
            return self.i

    t = time.perf_counter()
    actors = [A.remote(i) for i in range(args.actors)]
    values = ray.get([a.get.remote() for a in actors])
    assert values == list(range(args.actors))
    created = time.perf_counter() - t
    t2 = time.perf_counter()
    assert ray.get([a.get.remote() for a in actors]) == values
    print(f"{args.actors:,} actors: created and called in {created:.1f} s, "
          f"called again in {time.perf_counter() - t2:.2f} s", flush=True)
    for a in actors:
        ray.kill(a)
    del actors
    ray.shutdown()

    ray.init(num_cpus=2, object_store_memory=int(args.store_gb * 2**30))
    n = int(args.gb * 2**30)
    big = np.ones(n, dtype=np.uint8)
    t = time.perf_counter()
    ref = ray.put(big)
    put_s = time.perf_counter() - t
    t = time.perf_counter()
    back = ray.get(ref)
    assert back.nbytes == n and back[0] == 1 and back[-1] == 1
    get_s = time.perf_counter() - t

    @ray.remote
    def total_bytes(x):
        return x.nbytes

    t = time.perf_counter()
    assert ray.get(total_bytes.remote(ref)) == n
    print(f"{args.gb:g} GB object (store {args.store_gb:g} GB): put {put_s:.1f} s, get "
          f"{get_s * 1e3:.1f} ms (zero-copy), a task reading it {time.perf_counter() - t:.2f} s",
          flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
