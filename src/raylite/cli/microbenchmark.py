"""`raylite microbenchmark`: raylite's own core microbenchmarks (as `ray microbenchmark`).

Starts a local cluster, times each core operation for a fixed window and
prints one line per figure: mean rate and spread over the rounds. It is a
tool for people, not a test: nothing here asserts a speed.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable


def _rate(fn: Callable[[], None], window: float, batch: int = 1) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= window:
            return n * batch / elapsed


def _report(name: str, rates: list[float], unit: str = "per second") -> None:
    mean = statistics.mean(rates)
    sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
    print(f"{name:<48s} {mean:14,.1f} +- {sd:10,.1f} {unit}", flush=True)


def run(window: float = 1.0, rounds: int = 3, num_cpus: int | None = None,
        only: str | None = None) -> None:
    import raylite as ray

    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus)
    print(f"{'init (start a local cluster)':<48s} {time.perf_counter() - t0:14.3f} s", flush=True)

    @ray.remote
    def noop(*args):
        return 0

    @ray.remote
    class Actor:
        def noop(self, *args):
            return 0

    @ray.remote
    class AsyncActor:
        async def noop(self, *args):
            return 0

    @ray.remote
    def add(x, y):
        return x + y

    def tree() -> None:
        level = [ray.put(i) for i in range(256)]
        while len(level) > 1:
            level = [add.remote(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        ray.get(level[0])

    ray.get([noop.remote() for _ in range(20)])
    a = Actor.remote()
    aa = AsyncActor.remote()
    many = [Actor.remote() for _ in range(4)]
    ray.get([a.noop.remote(), aa.noop.remote()] + [x.noop.remote() for x in many])
    small = ray.put(0)
    cases: list[tuple[str, Callable[[], None], int, str]] = [
        ("single client tasks sync", lambda: ray.get(noop.remote()), 1, "per second"),
        ("single client tasks async (1000 batched)",
         lambda: ray.get([noop.remote() for _ in range(1000)]), 1000, "per second"),
        ("1:1 actor calls sync", lambda: ray.get(a.noop.remote()), 1, "per second"),
        ("1:1 actor calls async (1000 batched)",
         lambda: ray.get([a.noop.remote() for _ in range(1000)]), 1000, "per second"),
        ("1:1 async-actor calls async (1000 batched)",
         lambda: ray.get([aa.noop.remote() for _ in range(1000)]), 1000, "per second"),
        ("1:n actor calls async (4 actors, 1000 batched)",
         lambda: ray.get([x.noop.remote() for _ in range(250) for x in many]), 1000, "per second"),
        ("single client put calls (small)", lambda: ray.put(0), 1, "per second"),
        ("single client get calls (small)", lambda: ray.get(small), 1, "per second"),
        ("wait on 1000 ready refs", None, 1, "per second"),
        ("256-leaf reduction tree", tree, 1, "per second"),
    ]
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        big = np.zeros(100 * 2**20, dtype=np.uint8)
        big_ref = ray.put(big)

        @ray.remote
        def nbytes(x):
            return x.nbytes

        cases += [
            ("single client put 100 MiB", lambda: ray.put(big), big.nbytes / 1e9, "GB per second"),
            ("single client get 100 MiB", lambda: ray.get(big_ref), big.nbytes / 1e9, "GB per second"),
            ("tasks taking a 100 MiB ref", lambda: ray.get(nbytes.remote(big_ref)), 1, "per second"),
        ]
    else:
        print("(numpy is not installed: skipping the 100 MiB cases)")
    refs = [noop.remote() for _ in range(1000)]
    ray.get(refs)
    try:
        for name, fn, batch, unit in cases:
            if only and only not in name:
                continue
            if fn is None:
                fn = lambda: ray.wait(refs, num_returns=len(refs))  # noqa: E731
            _report(name, [_rate(fn, window, batch) for _ in range(rounds)], unit)
    finally:
        ray.shutdown()


def main(args) -> int:
    """The `raylite microbenchmark` command."""
    run(window=args.window, rounds=args.rounds, num_cpus=args.num_cpus, only=args.only)
    return 0
