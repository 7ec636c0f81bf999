"""One driver's share of the chaos tier: tasks, nested tasks, actors and large objects.

    python workload.py SECONDS OUT_JSON      (RAYLITE_ADDRESS / RAYLITE_TEMP_DIR name the cluster)

Runs rounds of mixed work until SECONDS have passed, checking every result: it is
right, or it is one of the precise errors a killed process may cause (a task whose
retries are spent, an actor without restarts that died). Every get() has a bound,
so a hang is a failure here, not a stuck test. Writes its counts to OUT_JSON.

Exit codes: 0 every result right or a precise expected error; 1 a wrong result or an
unexpected error (listed in OUT_JSON); 3 the cluster went away (RaySystemError), which
the daemon-death test expects.
"""
import json
import os
import random
import sys
import time

import numpy as np

import raylite as ray
from raylite.exceptions import (ActorDiedError, GetTimeoutError, RaySystemError,
                                WorkerCrashedError)

BOUND_S = 30.0      # no single get() may take longer: past that it is a hang


class Hang(Exception):
    """A get() passed BOUND_S: the run stops there (it is a failure)."""


@ray.remote(max_retries=5)
def square(x):
    return x * x


@ray.remote(max_retries=5)
def total(arr):
    return int(arr.sum())


@ray.remote(max_retries=5)
def nested(n):
    return sum(ray.get([square.remote(i) for i in range(n)], timeout=BOUND_S))


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Sturdy:
    def twice(self, x):
        return 2 * x


@ray.remote
class Fragile:
    def twice(self, x):
        return 2 * x


class Tally:
    def __init__(self):
        self.ok, self.expected, self.bad = 0, {}, []

    def check(self, name, thunk, want, allowed=()):
        try:
            got = thunk()
        except allowed as e:
            self.expected[type(e).__name__] = self.expected.get(type(e).__name__, 0) + 1
            return False
        except RaySystemError:
            raise
        except GetTimeoutError as e:
            self.bad.append(f"{name}: hung past {BOUND_S}s ({e})")
            raise Hang() from None
        except Exception as e:
            self.bad.append(f"{name}: unexpected {type(e).__name__}: {e}"[:500])
            return False
        if got != want:
            self.bad.append(f"{name}: got {got!r}, want {want!r}"[:500])
            return False
        self.ok += 1
        return True


def one_round(t, rng, fragile):
    xs = list(range(rng.randint(5, 30)))
    refs = [square.remote(x) for x in xs]
    t.check("tasks", lambda: ray.get(refs, timeout=BOUND_S), [x * x for x in xs],
            (WorkerCrashedError,))
    n = rng.randint(2, 6)
    t.check("nested", lambda: ray.get(nested.remote(n), timeout=BOUND_S),
            sum(i * i for i in range(n)), (WorkerCrashedError,))
    arr = np.arange(rng.randint(200_000, 1_000_000), dtype=np.int64)  # 1.6-8 MB: shared memory
    ref = ray.put(arr)
    t.check("large object", lambda: ray.get(total.remote(ref), timeout=BOUND_S), int(arr.sum()),
            (WorkerCrashedError,))
    t.check("large get", lambda: int(ray.get(ref, timeout=BOUND_S)[-1]), len(arr) - 1)
    sturdy = Sturdy.remote()
    calls = [sturdy.twice.remote(i) for i in range(10)]
    t.check("sturdy actor", lambda: ray.get(calls, timeout=BOUND_S), [2 * i for i in range(10)])
    x = rng.randint(0, 1000)
    if not t.check("fragile actor", lambda: ray.get(fragile.twice.remote(x), timeout=BOUND_S),
                   2 * x, (ActorDiedError,)):
        fragile = Fragile.remote()  # it died (a precise error): make another
    return fragile


def _write(out, t, rounds, code):
    """The counts so far, replaced whole (a driver killed on purpose leaves its last round's)."""
    with open(out + ".tmp", "w") as f:
        json.dump({"ok": t.ok, "rounds": rounds, "expected": t.expected, "bad": t.bad,
                   "code": code}, f)
    os.replace(out + ".tmp", out)


def main():
    seconds, out = float(sys.argv[1]), sys.argv[2]
    t = Tally()
    code = 0
    rng = random.Random(os.getpid())
    rounds = 0
    try:
        ray.init(address=os.environ.get("RAYLITE_ADDRESS", "auto"))
        fragile = Fragile.remote()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            fragile = one_round(t, rng, fragile)
            rounds += 1
            _write(out, t, rounds, None)
        code = 1 if t.bad else 0
    except Hang:
        code = 1
    except RaySystemError as e:
        t.expected["cluster gone"] = str(e)[:300]
        code = 3
    _write(out, t, rounds, code)
    ray.shutdown()  # also after the cluster went away: it must not hang or raise
    sys.exit(code)


if __name__ == "__main__":
    main()
