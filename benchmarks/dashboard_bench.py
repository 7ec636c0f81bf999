#!/usr/bin/env python3
"""The dashboard's memory and page latency with a cluster holding many tasks, objects, actors.

    python benchmarks/dashboard_bench.py [--tasks 100000] [--objects 20000] [--actors 20]
                                         [--rounds 20]

In a fresh temp dir: `raylite start --head --dashboard-port 0`, then a driver that holds
--actors actors, --objects objects (a tenth of them 200 KB, so in shared memory) and
--tasks tasks in flight (each waits for the result of one sleeping task, so every one
stays PENDING_ARGS_AVAIL and the tasks page has them all to filter and page: in the GCS's
task-event store, which filters and pages them; only a page travels). Then, logged
in with the cluster token over keep-alive-free HTTP (a new connection per page, as a
browser's first view):

    latency   each page (overview, jobs, actors, tasks, tasks filtered, tasks page 1000,
              the tasks' timeline, objects, metrics, logs) fetched --rounds times: median
              and max in ms
    RSS       the dashboard process's RSS (psutil) before the first page, after every
              page round, and its peak (VmHWM)
    render    the dashboard's own part, without the cluster's: a process importing what the
              dashboard imports unpickles a reply of --tasks tasks and as many objects and
              renders the tasks and objects pages (ms) and its RSS (peak)
    history   a day of samples (17,280 at 5 s) pushed through the overview's ring:
              how many it keeps

Prints one table; everything it started is stopped by pid (`raylite stop`).
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse

import psutil

DRIVER = textwrap.dedent("""
    import sys, time
    import raylite as ray
    ray.init(address="auto")
    N_TASKS, N_OBJECTS, N_ACTORS = {tasks}, {objects}, {actors}

    @ray.remote(num_cpus=0)
    class Holder:
        def ping(self):
            return 1

    @ray.remote
    def gate():
        time.sleep(3600)

    @ray.remote
    def waits_for(x, i):
        return i

    actors = [Holder.remote() for _ in range(N_ACTORS)]
    ray.get([a.ping.remote() for a in actors])
    objs = [ray.put(b"x" * (200_000 if i % 10 == 0 else 100)) for i in range(N_OBJECTS)]
    g = gate.remote()
    tasks = [waits_for.remote(g, i) for i in range(N_TASKS)]
    print("READY", flush=True)
    sys.stdin.read()
""")

PAGES = ("/", "/jobs", "/actors", "/tasks", "/tasks?name=waits&state=PENDING_ARGS_AVAIL",
         "/tasks?page=1000&per=50", "/tasks?view=timeline", "/objects",
         "/objects?state=SHARED_MEMORY", "/metrics/view", "/logs")


def cli(*args, temp):
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", temp],
                          capture_output=True, text=True, timeout=120)


def get(host, port, path, cookie=None, body=None):
    conn = http.client.HTTPConnection(host, port, timeout=120)
    headers = {"Cookie": f"raylite_dashboard={cookie}"} if cookie else {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.getheader("Set-Cookie"), data


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


RENDER = textwrap.dedent("""
    import pickle, statistics, sys, time
    from raylite._core.records import ObjectRecord, StateSnapshot, TaskEventRecord
    from raylite._protocol.messages import TaskEventsReply
    from raylite.dashboard import pages, server  # what the dashboard process imports
    from raylite.dashboard.history import History
    n = int(sys.argv[1])
    snap = StateSnapshot("bench", objects=tuple(
        ObjectRecord(f"{i:040x}", "127.0.0.1:40000", "INLINE", 100, 1, 0) for i in range(n)))
    page = TaskEventsReply(1, tuple(TaskEventRecord(
        f"{i:032x}", 0, "waits_for", "RUNNING", "ab12cd34", None, "NORMAL_TASK", "waits_for",
        "n" * 32, "w" * 32, 4242, None, None, 1, 2, 3, "127.0.0.1:1", "127.0.0.1:2",
        (("PENDING_NODE_ASSIGNMENT", 1), ("RUNNING", 2)), 2000, 3000) for i in range(50)), n)
    wire = {"objects": pickle.dumps(snap), "tasks": pickle.dumps(page)}  # a page of tasks
    del snap
    def rss():
        got = {line.split(":")[0]: int(line.split()[1]) / 1024
               for line in open("/proc/self/status") if line.startswith(("VmRSS:", "VmHWM:"))}
        return got["VmRSS"], got["VmHWM"]
    class Reader:                   # the state request, answered from the pickled bytes
        address = "bench"
        def state(self, kinds, owners=False):
            return pickle.loads(wire[kinds[0]]), ()
        def tasks(self, filters, limit, offset):
            return pickle.loads(wire["tasks"])
    r, h, out = Reader(), History(5.0), []
    for path in ("/tasks", "/tasks?state=RUNNING&name=wait", "/objects"):
        q = dict(x.split("=") for x in path.partition("?")[2].split("&") if x)
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            status, body = pages.PAGES[path.partition("?")[0]](r, h, q, time.time())
            ts.append((time.perf_counter() - t) * 1000)
        out.append(f"{path}: {statistics.median(ts):.0f} ms")
    now, peak = rss()
    print(f"{len(wire['tasks']) / 2**10:.1f} KiB of tasks on the wire; " + ", ".join(out)
          + f"; RSS {now:.1f} MiB, peak {peak:.1f} MiB")
""")


def render_only(n: int) -> str:
    """The dashboard's own cost for n tasks and n objects received (no cluster): a process
    that imports what the dashboard does, unpickles the reply and renders the pages."""
    out = subprocess.run([sys.executable, "-c", RENDER, str(n)], capture_output=True, text=True,
                         timeout=600)
    return (out.stdout or out.stderr).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--objects", type=int, default=20_000)
    ap.add_argument("--actors", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--render-only", action="store_true",
                    help="only the dashboard's own cost of --tasks records (no cluster)")
    args = ap.parse_args()
    if args.render_only:
        print(f"render {args.tasks:,d} tasks and objects: {render_only(args.tasks)}")
        return 0
    temp = tempfile.mkdtemp(prefix="raylite-dash-bench-")
    driver = None
    try:
        out = cli("start", "--head", "--port", "0", "--num-cpus", "2", "--dashboard-port", "0",
                  temp=temp)
        assert out.returncode == 0, out.stdout + out.stderr
        url = out.stdout.split("log in once with")[1].split()[0]
        parts = urllib.parse.urlsplit(url)
        pid = int(open(os.path.join(temp, "raylite_dashboard")).read().split()[1])
        dash = psutil.Process(pid)
        rss0 = dash.memory_info().rss
        t0 = time.monotonic()
        driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(**vars(args))],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, RAYLITE_TEMP_DIR=temp))
        assert driver.stdout.readline().strip() == "READY"
        setup = time.monotonic() - t0
        from raylite.dashboard.reader import resolve
        reader = resolve(None, temp)
        direct = []
        for _ in range(3):
            t = time.perf_counter()
            got = reader.tasks([], 50, 0)
            direct.append((time.perf_counter() - t) * 1000)
        summary = []
        for _ in range(3):
            t = time.perf_counter()
            reader.task_summary()
            summary.append((time.perf_counter() - t) * 1000)
        _, cookie, _ = get(parts.hostname, parts.port, f"{parts.path}?{parts.query}")
        cookie = cookie.split(";")[0].split("=", 1)[1]
        times = {p: [] for p in PAGES}
        sizes, shown, unanswered = {}, {}, {}
        rss_rounds = []
        for _ in range(args.rounds):
            for p in PAGES:
                t = time.perf_counter()
                status, _, data = get(parts.hostname, parts.port, p, cookie)
                times[p].append((time.perf_counter() - t) * 1000)
                assert status == 200, (p, status)
                sizes[p] = len(data)
                shown[p] = data.count(b"<tr>") - 1 if b"<tbody>" in data else 0
                unanswered[p] = unanswered.get(p, 0) + (b"No answer in time" in data)
            rss_rounds.append(dash.memory_info().rss)
        from raylite.dashboard.history import History, Sample
        h = History(5.0)
        for i in range(17_280):
            h.add(Sample(i * 5.0, 1, 2, 0, 1, 0, 1))
        print(f"cluster: {args.tasks:,d} tasks in flight, {args.objects:,d} objects, "
              f"{args.actors} actors (driver ready in {setup:.1f} s); {args.rounds} rounds")
        print(f"{'page':<44s} {'median ms':>10s} {'max ms':>8s} {'bytes':>9s} {'rows':>5s} "
              f"{'owner late':>10s}")
        for p in PAGES:
            print(f"{p:<44s} {statistics.median(times[p]):>10.1f} {max(times[p]):>8.1f} "
                  f"{sizes[p]:>9,d} {shown[p]:>5d} {unanswered.get(p, 0):>4d}/{args.rounds}")
        mib = 2**20
        print(f"dashboard RSS: {rss0 / mib:.1f} MiB at start, {rss_rounds[0] / mib:.1f} MiB after "
              f"round 1, {rss_rounds[-1] / mib:.1f} MiB after round {args.rounds}, "
              f"peak {peak_rss(pid) / mib:.1f} MiB")
        print(f"the task-event request alone (a page of 50 of {got.total:,d}): "
              f"{statistics.median(direct):.0f} ms median")
        print(f"the task store's counts by state (what the sampler asks every 5 s): "
              f"{statistics.median(summary):.0f} ms median")
        print(f"render {args.tasks:,d} tasks and objects as received (no cluster): "
              f"{render_only(args.tasks)}")
        print(f"history: a day of 5 s samples (17,280) leaves {len(h)} in the ring")
        from raylite.dashboard.series import SeriesHistory
        sh = SeriesHistory(5.0)
        for i in range(17_280):
            sh.add(i * 5.0, {f"s{k}": float(i) for k in range(20)})
        print(f"metrics page's series: a day of 5 s samples of 20 series leaves "
              f"{len(sh.points('s0', 17_279 * 5.0))} points each "
              f"({sh.cap * 8 / 2**10:.1f} KiB a series, at most {sh.max_series} series)")
        return 0
    finally:
        if driver is not None:
            driver.stdin.close()
            try:
                driver.wait(timeout=60)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait()
        cli("stop", "--force", temp=temp)
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
