"""The raylite demo: a local cluster, tasks, actors, objects and errors, with timings."""
import time

import raylite as ray

t0 = time.perf_counter()
ctx = ray.init()
started = time.perf_counter() - t0
if ctx.address == "local":
    print(f"raylite runs in this process (local mode), ready in {started:.3f} s")
else:
    print(f"started a local cluster at {ctx.address} in {started:.3f} s")
print(f"resources: {ray.cluster_resources()['CPU']:g} CPUs")


@ray.remote
def square(x):
    return x * x


@ray.remote
def total(refs):
    return sum(ray.get(refs))  # refs nested in a list arrive as refs


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n


@ray.remote
def fails():
    raise ValueError("a task failed on purpose")


t = time.perf_counter()
squares = [square.remote(i) for i in range(10)]
print("squares:", ray.get(squares), f"({time.perf_counter() - t:.3f} s)")
print("sum of squares, computed by a task from refs:", ray.get(total.remote(squares)))

counter = Counter.remote(100)
for k in range(1, 4):
    counter.add.remote(k)
print("counter after 3 calls:", ray.get(counter.add.remote(0)))

data = ray.put(list(range(1000)))
ready, pending = ray.wait([square.remote(3), square.remote(4)], num_returns=2)
print("wait:", len(ready), "ready,", len(pending), "pending; put/get:", len(ray.get(data)), "items")

try:
    ray.get(fails.remote())
except ValueError as e:
    print("caught the remote error as a ValueError:", str(e).splitlines()[-1])

t = time.perf_counter()
ray.get([square.remote(i) for i in range(2000)])
print(f"2000 tasks in {time.perf_counter() - t:.3f} s")
ray.shutdown()
print("shut down cleanly")
