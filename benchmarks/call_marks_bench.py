"""What marking a call's output costs a worker (_worker/output.py), in-process: a call of an
actor that runs calls at once (shared streams: a threaded actor's call is noted by its
thread's id, an async one in a contextvar of its asyncio task's own context), next to a
task or sequential call (two attribute stores and a check), and a call that prints one
line, each against the same loop without marks (the async case against the same loop
entering a fresh context, which its asyncio task has anyway). Streams write to a pipe drained by a thread,
as a worker's are.

    python benchmarks/call_marks_bench.py [--runs 200000] [--rounds 5]

Prints the median over the rounds of the extra cost per call, in µs.
"""
from __future__ import annotations

import argparse
import contextvars
import io
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from raylite._worker.output import MarkedText, TaskMarks  # noqa: E402


def _streams() -> tuple:
    out = []
    for _ in range(2):
        r, w = os.pipe()
        threading.Thread(target=lambda fd=r: _drain(fd), daemon=True).start()
        out.append(MarkedText(io.BufferedWriter(io.FileIO(w, "w")), line_buffering=True))
    return tuple(out)


def _drain(fd: int) -> None:
    while os.read(fd, 1 << 16):
        pass


def _per_call(body, runs: int) -> float:
    t = time.perf_counter()
    body(runs)
    return (time.perf_counter() - t) / runs * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    tid = os.urandom(16)
    seq = TaskMarks(_streams())
    shared = TaskMarks(_streams())
    shared.share()
    out = shared.streams[0]
    call = type("Call", (), {"task_id": tid, "attempt": 0})()  # a PushActorTask's fields

    def nothing(n):
        for _ in range(n):
            pass

    def sequential_quiet(n):
        for _ in range(n):
            seq.begin(tid, 0)
            seq.end()

    def thread_quiet(n):  # a threaded actor's call, in its pool thread
        for _ in range(n):
            shared.enter_thread(call)
            shared.leave_thread(call)

    def task_quiet(n):  # an async actor's call, in its own asyncio task's context
        for _ in range(n):
            contextvars.Context().run(shared.enter_task, call)
            shared.leave_task(call)

    def context_alone(n):  # what the asyncio task's own context costs anyway
        for _ in range(n):
            contextvars.Context().run(int)

    def thread_one_line(n):
        for _ in range(n):
            shared.enter_thread(call)
            out.write("one line of output\n")
            shared.leave_thread(call)

    def plain_one_line(n):
        s = seq.streams[0]
        for _ in range(n):
            s.write("one line of output\n")

    cases = {"sequential call, prints nothing": sequential_quiet,
             "threaded actor's call, prints nothing": thread_quiet,
             "async actor's call, prints nothing": task_quiet,
             "threaded actor's call, prints a line (vs. unmarked)": thread_one_line}
    results: dict = {name: [] for name in cases}
    for _ in range(args.rounds):
        base = _per_call(nothing, args.runs)
        ctx = _per_call(context_alone, args.runs)
        line = _per_call(plain_one_line, args.runs // 10)
        for name, body in cases.items():
            n = args.runs if "nothing" in name else args.runs // 10
            ref = ctx if "async" in name else base if "nothing" in name else line
            results[name].append(_per_call(body, n) - ref)
    for name, xs in results.items():
        print(f"{name:55s} +{statistics.median(xs):.3f} µs per call "
              f"(rounds: {', '.join(f'{x:.3f}' for x in xs)})")


if __name__ == "__main__":
    main()
