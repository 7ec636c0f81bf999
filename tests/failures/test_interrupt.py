"""Ctrl-C anywhere in a driver loses no reply (item 10 of issue 11).

A subprocess driver makes calls one at a time (tasks and actor calls, so the
thread in get() reads its own replies: read_turn.py) while this test sends it
SIGINT at random moments. After each interrupt the driver checks that every
ref it made in that round completes; one that does not is a lost reply.
"""
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil

DRIVER = textwrap.dedent("""
    import faulthandler, signal, sys
    import raylite as ray

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks when we hang

    ray.init(num_cpus=2)

    @ray.remote
    def f(x):
        return x

    @ray.remote
    class A:
        def m(self, x):
            return x

    a = A.remote()
    assert ray.get(a.m.remote(0)) == 0 and ray.get(f.remote(0)) == 0
    rounds = interrupted = 0
    while True:
        made = []
        try:
            print("go", flush=True)            # the test sends one SIGINT per "go"
            i = 0
            while True:
                r = f.remote(i)
                made.append((r, i))
                assert ray.get(r) == i
                r = a.m.remote(-i)
                made.append((r, -i))
                assert ray.get(r) == -i
                i += 1
        except KeyboardInterrupt:
            interrupted += 1
        rounds += 1
        refs = [r for r, _ in made]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=10)
        if pending:
            print(f"LOST {len(pending)} of {len(refs)} refs in round {rounds}", flush=True)
            break
        values = ray.get(refs)
        if values != [v for _, v in made]:
            print(f"WRONG values in round {rounds}", flush=True)
            break
        if sys.stdin.readline().strip() != "more":
            print(f"DONE {rounds} {interrupted}", flush=True)
            break
    ray.shutdown()
""")


def _run_driver(seconds: float, max_delay: float) -> tuple[str, int]:
    """Runs DRIVER, one SIGINT per round at a random moment; (its last words, rounds)."""
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x.strip()) for x in proc.stdout] +
                              [lines.put("EOF")])
    reader.start()
    rng = random.Random()
    rounds = 0
    try:
        end = time.monotonic() + seconds
        while True:
            try:
                last = lines.get(timeout=30)
            except queue.Empty:  # wedged: its stacks go to stderr, for the report
                os.kill(proc.pid, signal.SIGUSR1)
                time.sleep(1)
                return f"HUNG after {rounds} interrupts", rounds
            if last != "go":
                return last, rounds
            time.sleep(rng.uniform(0, max_delay))
            os.kill(proc.pid, signal.SIGINT)
            rounds += 1
            try:  # the driver checks its round, then waits for a word from us
                proc.stdin.write("more\n" if time.monotonic() < end else "stop\n")
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # it died: its last words are next in `lines`
    finally:
        try:
            proc.stdin.close()  # a driver still waiting for a word ends by itself
        except BrokenPipeError:
            pass
        if proc.poll() is None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                family = psutil.Process(proc.pid).children(recursive=True)
                proc.kill()
                proc.wait()
                for p in family:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
        reader.join(10)
        proc.stdout.close()


def test_random_interrupts_lose_no_reply():
    out, rounds = _run_driver(seconds=15, max_delay=0.02)
    assert out.startswith("DONE"), f"after {rounds} interrupts the driver said: {out!r}"
    assert rounds > 100
