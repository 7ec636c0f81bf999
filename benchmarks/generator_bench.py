#!/usr/bin/env python3
"""Streaming generators: items per second, against the same values as tasks, in one sitting.

    python benchmarks/generator_bench.py [--items 5000] [--rounds 3] [--module raylite]

    stream        one generator task yielding --items small ints, consumed with `for ref in
                  gen: get(ref)` (each item: one StreamItem, one ref, one get)
    stream 100KB  the same with 200 KB bytes values (shared memory on a cluster)
    tasks         --items tasks returning the same ints, submitted then all got
    first item    seconds from .remote() to the first value of a generator that then sleeps

Best of --rounds for each; runs on whatever `--module` names (raylite, or ray to compare).
"""
from __future__ import annotations

import argparse
import importlib
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--module", default="raylite")
    a = ap.parse_args()
    ray = importlib.import_module(a.module)
    ray.init(num_cpus=2)

    @ray.remote
    def stream(n, size):
        value = b"x" * size if size else 0
        for i in range(n):
            yield value or i

    @ray.remote
    def one(i):
        return i

    @ray.remote
    def slow_after_first():
        yield 1
        time.sleep(2)
        yield 2

    def best(fn):
        out = []
        for _ in range(a.rounds):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return min(out)

    n = a.items
    t_stream = best(lambda: [ray.get(r) for r in stream.remote(n, 0)])
    t_big = best(lambda: [ray.get(r) for r in stream.remote(n // 10, 200_000)])
    t_tasks = best(lambda: ray.get([one.remote(i) for i in range(n)]))

    def first():
        gen = slow_after_first.remote()
        ray.get(next(gen))
        return gen
    keep = []
    t_first = best(lambda: keep.append(first()))
    print(f"{'stream items/s':24s} {n / t_stream:12.0f}")
    print(f"{'stream 200KB items/s':24s} {n // 10 / t_big:12.0f}")
    print(f"{'tasks/s (same values)':24s} {n / t_tasks:12.0f}")
    print(f"{'first item s':24s} {t_first:12.4f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
