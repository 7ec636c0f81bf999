#!/usr/bin/env python3
"""raylite and Ray on the same four network namespaces, one sitting: objects between nodes
against raw TCP over the same veth link, a broadcast, and tasks spread over three nodes.

    sudo .venv/bin/python benchmarks/multinode.py [--ray /tmp/rayenv/bin/python] [--quick]
                                                  [--size-mib 1024] [--bcast-mib 256]
                                                  [--transfer-only] [--huge]
                                                  [--prefix mxb] [--subnet 198.18.0.0/24]

The namespaces are the test harness's (tests/multinode/netns.py, imported, not copied):
a switch namespace with a bridge and four nodes on veth pairs, the first four addresses
of --subnet (198.18.0.1-4 by default; namespace names start with --prefix), each in
network, mount and PID namespaces of its own with its own tmpfs on /dev/shm. For each
system (raylite, then Ray when --ray names a python that has it; Ray 2.60.0 is the
reference, ../shared/bench/README.md) a fresh set of namespaces is made, and:

    raw TCP    n1 ─► n2: one process sends --size-mib MiB from memory (sendall, 8 MiB at a
               time), another receives them (recv_into) into a buffer already mapped (the
               link's own rate), then into a new /dev/shm file mapped with MAP_POPULATE (the
               pages any receiver of a new object must fill, as a pull does); a first
               untimed round of each warms TCP and the buffers
    cluster    n0 the head with 0 CPUs (the driver runs there), n1, n2, n3 joined, 1 CPU
               each and a resource of their name ("n1": 100 ...) to pin tasks by; each
               node's object store 2.5 GB (its /dev/shm is 3 GiB)
    transfer   a task on n1 makes an array of --size-mib MiB; a task on n2 takes it as its
               argument (the whole object crosses the link before it runs) and returns
               two of its bytes: GB/s = size / (submit → result), 10^9 B/s. The first
               round is cold (n2 has never held so large an object: its copy fills new
               pages); in the later ones n2 may hold a freed copy of the round before
               whose segment its store recycles (raylite's pool; Ray's plasma arena):
               "steady", reported apart (a steady stream of objects of one size)
    broadcast  the driver puts --bcast-mib MiB (on n0); one task on each of n1, n2, n3 takes
               it at once: seconds until all three are done, and the bytes moved per second
    tasks      a no-op task with scheduling_strategy="SPREAD" returning its node id: one at a
               time (submit, get, again) and batched (all submitted, then got): tasks per
               second, and how many of the three nodes ran some

With --huge each node's tmpfs is mounted with huge=within_size: its files take 2 MiB
pages, so filling a new object takes a 512th of the page faults and allocations.

Rounds: the median (and the best) of 3 (--quick: 2) for the broadcast and of the steady
transfers (after the cold one). Then it prints the table (and --json writes every figure);
--transfer-only stops after the transfers. Everything is torn down by the harness, also after
a failure: every process in our namespaces, then the namespaces; the Ray session dirs live
in a temp dir of this run, removed at the end. Needs root, `ip`, `unshare` and `nsenter`.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "multinode"))
from netns import Net, why_skip  # noqa: E402 (the harness, from the tests' folder)

CHUNK = 8 * 2**20
STORE = 2_500_000_000          # each node's object store, bytes
SHM = "3g"                     # each node's /dev/shm tmpfs (its mount's size=)
RAW_PORT = 7070
DRIVER_TIMEOUT_S = 900.0
WORKERS = ("n1", "n2", "n3")

RECEIVE = """
import mmap, os, socket, sys
ip, port, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
warm = memoryview(mmap.mmap(-1, size))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(1)
print("READY", flush=True)
for mode in ("memory", "shm"):
    for _ in range(1 + rounds):
        c, _ = s.accept()
        if mode == "shm":   # a new /dev/shm file, mapped as a pull maps its object
            path = f"/dev/shm/mxb-raw-{os.getpid()}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
            view = memoryview(mm)
        else:
            view = warm
        got = 0
        while got < size:
            n = c.recv_into(view[got:got + {chunk}])
            if not n:
                raise SystemExit("the sender closed early")
            got += n
        c.sendall(b"k")     # the sender's clock stops here
        if mode == "shm":
            view.release()
            mm.close()
            os.close(fd)
            os.unlink(path)
        c.sendall(b"r")     # freed: the next round may start
        c.close()
""".replace("{chunk}", str(CHUNK))

SEND = """
import json, socket, sys, time
ip, port, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = memoryview(bytearray(b"\\x01") * size)       # real pages, not the shared zero page
out = {}
for mode in ("memory", "shm"):
    rates = []
    for _ in range(1 + rounds):                        # the first: TCP and the buffers warm
        t0 = time.perf_counter()
        c = socket.create_connection((ip, port), timeout=120)
        for off in range(0, size, {chunk}):
            c.sendall(data[off:off + {chunk}])
        assert c.recv(1) == b"k"
        rates.append(size / (time.perf_counter() - t0) / 1e9)
        assert c.recv(1) == b"r"
        c.close()
    out[mode] = rates[1:]
print(json.dumps(out))
""".replace("{chunk}", str(CHUNK))

DRIVER = """
import json, sys, time
import numpy as np
import {module} as ray

address, size, bsize, rounds, n_one, n_batch, only_transfer = sys.argv[1], *map(int, sys.argv[2:8])
ray.init(address=address)
NODES = {nodes!r}

def on(n):
    return {{"resources": {{n: 1}}}}

@ray.remote(num_cpus=1)
def make(n):
    return np.ones(n, dtype=np.uint8)

@ray.remote(num_cpus=1)
def touch(a):
    return int(a[0]) + int(a[-1])

@ray.remote(num_cpus=1)
def node():
    return ray.get_runtime_context().get_node_id()

def settle():
    time.sleep(1.0)   # frees of the round before reach every node

ray.get([node.options(**on(n)).remote() for n in NODES for _ in range(2)])  # warm workers
out = {{"transfer": [], "broadcast_s": []}}
for _ in range(1 + rounds):   # the first is cold: n2 has never held an object this large
    ref = make.options(**on("n1")).remote(size)
    ray.wait([ref], timeout=600)
    t0 = time.perf_counter()
    assert ray.get(touch.options(**on("n2")).remote(ref), timeout=600) == 2
    out["transfer"].append(size / (time.perf_counter() - t0) / 1e9)
    del ref
    settle()
if only_transfer:
    print(json.dumps(out))
    raise SystemExit
for _ in range(rounds):
    ref = ray.put(np.ones(bsize, dtype=np.uint8))
    ray.get([touch.options(**on(n)).remote(np.ones(2, np.uint8)) for n in NODES])  # warm
    t0 = time.perf_counter()
    assert ray.get([touch.options(**on(n)).remote(ref) for n in NODES], timeout=600) == [2] * 3
    out["broadcast_s"].append(time.perf_counter() - t0)
    del ref
    settle()
spread = node.options(scheduling_strategy="SPREAD")
ray.get([spread.remote() for _ in range(30)])
t0 = time.perf_counter()
ran = [ray.get(spread.remote()) for _ in range(n_one)]
out["one_at_a_time"] = [n_one / (time.perf_counter() - t0), len(set(ran))]
t0 = time.perf_counter()
ran = ray.get([spread.remote() for _ in range(n_batch)], timeout=600)
out["batched"] = [n_batch / (time.perf_counter() - t0), len(set(ran)),
                  sorted(ran.count(n) for n in set(ran))]
print(json.dumps(out))
"""


def raw_tcp(net: Net, size: int, rounds: int) -> list:
    """GB/s of `rounds` sends of `size` bytes from n1 to n2 over their veth link."""
    a, b = net.nodes[1], net.nodes[2]
    recv = subprocess.Popen(b.enter() + [sys.executable, "-c", RECEIVE, b.ip, str(RAW_PORT),
                                         str(size), str(rounds)],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([recv.stdout], [], [], 60)
        if not ready or not recv.stdout.readline().startswith(b"READY"):
            raise RuntimeError("the raw TCP receiver did not start")
        return a.run(SEND, b.ip, str(RAW_PORT), str(size), str(rounds),
                     timeout=DRIVER_TIMEOUT_S).result
    finally:
        recv.wait(60)
        recv.stdout.close()


def start_raylite(net: Net) -> str:
    head = net.nodes[0]
    head.start("--record", "--host", head.ip, "--port", "6380", "--num-cpus", "0",
               "--object-store-memory", str(STORE))
    for name, n in zip(WORKERS, net.nodes[1:]):
        n.start("--address", head.address, "--num-cpus", "1", "--resources",
                json.dumps({name: 100}), "--object-store-memory", str(STORE))
    return "auto"


def ray_env(tmp: str) -> dict:
    """What Ray's processes and drivers run with: a HOME of this run's own (nothing of the
    machine's ~/.ray is read), no usage stats."""
    home = os.path.join(tmp, "home")
    os.makedirs(home, exist_ok=True)
    return {"HOME": home, "RAY_USAGE_STATS_ENABLED": "0"}


def start_ray(net: Net, python: str, tmp: str) -> str:
    """`ray start` in each node's namespaces (its session dir under `tmp`); the head's address."""
    ray_cli = os.path.join(os.path.dirname(python), "ray")
    head = net.nodes[0]
    address = f"{head.ip}:6379"
    for i, n in enumerate(net.nodes):
        temp = os.path.join(tmp, f"r{i}")
        os.makedirs(temp, exist_ok=True)
        common = ["--node-ip-address", n.ip, "--object-store-memory", str(STORE),
                  "--temp-dir", temp, "--disable-usage-stats"]
        args = (["--head", "--port", "6379", "--num-cpus", "0", "--include-dashboard=false"]
                if i == 0 else ["--address", address, "--num-cpus", "1", "--resources",
                                json.dumps({WORKERS[i - 1]: 100})])
        r = subprocess.run(n.enter() + [ray_cli, "start", *args, *common], capture_output=True,
                           text=True, env={**n.env(), **ray_env(tmp)},
                           timeout=300, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"ray start on {n.ns} failed:\n{r.stdout}\n{r.stderr}")
    return address


def sitting(system: str, python: str, tmp: str, a: argparse.Namespace) -> dict:
    net = Net(os.path.join(tmp, system), 4, shm=SHM + (",huge=within_size" if a.huge else ""),
              prefix=a.prefix, subnet=a.subnet)
    os.makedirs(net.tmp)
    try:
        net.make()
        raw = raw_tcp(net, a.size_mib * 2**20, a.rounds)
        address = start_raylite(net) if system == "raylite" else start_ray(net, python, net.tmp)
        code = DRIVER.format(module=system, nodes=WORKERS)
        r = net.nodes[0].run(code, address, str(a.size_mib * 2**20), str(a.bcast_mib * 2**20),
                             str(a.rounds), str(a.one), str(a.batch),
                             str(int(a.transfer_only)), python=python,
                             timeout=DRIVER_TIMEOUT_S,
                             env=ray_env(net.tmp) if system == "ray" else None)
        return {"raw_tcp": raw, **r.result}
    finally:
        net.teardown()


def _med(xs: list) -> str:
    return f"{statistics.median(xs):.2f} (best {max(xs):.2f})"


def table(results: dict, a: argparse.Namespace) -> str:
    systems = list(results)
    rows = [("| | " + " | ".join(systems) + " |"), "|---" * (len(systems) + 1) + "|"]

    def row(name: str, f) -> None:
        rows.append(f"| {name} | " + " | ".join(f(results[s]) for s in systems) + " |")

    gib = a.size_mib / 1024
    row(f"raw TCP n1 → n2, {a.size_mib} MiB into memory already mapped (GB/s: the link)",
        lambda r: _med(r["raw_tcp"]["memory"]))
    row(f"raw TCP n1 → n2, {a.size_mib} MiB into a new /dev/shm file (GB/s)",
        lambda r: _med(r["raw_tcp"]["shm"]))
    row(f"{gib:g} GiB made on n1, taken by a task on n2, cold: the first round (GB/s)",
        lambda r: f"{r['transfer'][0]:.2f}")
    row(f"... steady: rounds 2-{len(next(iter(results.values()))['transfer'])} (GB/s)",
        lambda r: _med(r["transfer"][1:]))
    for label, pick in (("cold", lambda r: r["transfer"][0]),
                        ("steady", lambda r: statistics.median(r["transfer"][1:]))):
        row(f"... {label}, as a share of raw TCP into memory / into a new /dev/shm file",
            lambda r, pick=pick: " / ".join(f"{pick(r) / statistics.median(raw):.0%}" for raw in
                                           (r["raw_tcp"]["memory"], r["raw_tcp"]["shm"])))
    if "one_at_a_time" not in next(iter(results.values())):
        return "\n".join(rows)
    mb = a.bcast_mib * 2**20 * 3 / 1e9
    row(f"{a.bcast_mib} MiB put on n0, taken by a task on each of n1-n3 (s; GB/s moved)",
        lambda r: f"{statistics.median(r['broadcast_s']):.2f} s; "
                  f"{mb / statistics.median(r['broadcast_s']):.2f}")
    row(f"SPREAD tasks one at a time ({a.one}; /s, nodes used)",
        lambda r: f"{r['one_at_a_time'][0]:,.0f} /s, {r['one_at_a_time'][1]} nodes")
    row(f"SPREAD tasks batched ({a.batch}; /s, tasks per node)",
        lambda r: f"{r['batched'][0]:,.0f} /s, {'/'.join(map(str, r['batched'][2]))}")
    if len(systems) == 2:
        x, y = (results[s] for s in systems)
        rows.append("")
        rows.append(f"{systems[0]} / {systems[1]}: transfer cold "
                    f"{x['transfer'][0] / y['transfer'][0]:.1f}×, steady "
                    f"{statistics.median(x['transfer'][1:]) / statistics.median(y['transfer'][1:]):.1f}×, "
                    f"broadcast {statistics.median(y['broadcast_s']) / statistics.median(x['broadcast_s']):.1f}×, "
                    f"one at a time {x['one_at_a_time'][0] / y['one_at_a_time'][0]:.1f}×, "
                    f"batched {x['batched'][0] / y['batched'][0]:.1f}×")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ray", default="/tmp/rayenv/bin/python",
                   help="a python with Ray installed ('' to skip Ray)")
    p.add_argument("--quick", action="store_true", help="2 rounds, fewer tasks")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--bcast-mib", type=int, default=256)
    p.add_argument("--huge", action="store_true",
                   help="mount each node's /dev/shm with huge=within_size (2 MiB pages)")
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--transfer-only", action="store_true",
                   help="raw TCP and the transfer rounds only (no broadcast, no tasks)")
    p.add_argument("--prefix", default="mxb", help="what our namespaces' names start with")
    p.add_argument("--subnet", default=os.environ.get("RAYLITE_NETNS_SUBNET", "198.18.0.0/24"),
                   help="the nodes' addresses: a subnet inside 198.18.0.0/24 (first hosts)")
    a = p.parse_args()
    a.rounds, a.one, a.batch = (2, 200, 1000) if a.quick else (3, 500, 3000)
    why = why_skip(a.prefix)
    if why:
        raise SystemExit(f"cannot run: {why}")
    systems = {"raylite": sys.executable}
    if a.ray:
        probe = subprocess.run([a.ray, "-c", "import ray; print(ray.__version__)"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            systems[f"ray {probe.stdout.strip()}"] = a.ray
        else:
            print(f"Ray is not usable at {a.ray}: only raylite runs", file=sys.stderr)
    load = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="mxb-")   # short: Ray's socket paths live under it
    results = {}
    try:
        for name, python in systems.items():
            t0 = time.monotonic()
            results[name] = sitting(name.split()[0], python, tmp, a)
            print(f"{name}: done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average before: {load:.1f}, after: {os.getloadavg()[0]:.1f}; "
          f"{os.cpu_count()} cores; /dev/shm huge pages: {'on' if a.huge else 'off'}")
    print(table(results, a))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
