"""A real cluster from `raylite start --head --metrics-export-port 0` (loopback, a private temp
dir): `raylite status --metrics`, the Prometheus endpoint and its token check, workers' log
files (readable after their task ended and after the cluster stopped, until the next head
starts), one task's lines by its id, and a driver's progress bars. Every head is stopped by `raylite stop` (by pid)."""
import http.client
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.parse

import pytest
from test_cli import raylite

DRIVER = """
    import time
    import raylite
    from raylite.experimental.tqdm_ray import tqdm
    from raylite.util.metrics import Counter, Gauge, Histogram
    raylite.init(address="auto")

    @raylite.remote
    def work(i):
        Counter("served", "requests served", ("route",)).inc(tags={"route": "/a"})
        Histogram("latency_s", "request time", [0.1, 1.0]).observe(0.2 * i)
        for _ in tqdm(range(3), desc=f"bar{i}"):
            pass
        print(f"out-line-{i}")
        print(f"err-line-{i}", file=__import__("sys").stderr)
        return __import__("os").getpid()

    @raylite.remote
    class Depth:
        def set(self, n):
            Gauge("queue_depth", "items waiting").set(n)
            return n

    @raylite.remote
    def chatty(i):
        print(f"chatty-{i}-a")
        print(f"chatty-{i}-b", file=__import__("sys").stderr)
        print(f"chatty-{i}-c", end="")   # no newline: the end marker still gets its own line
        return raylite.get_runtime_context().get_task_id()

    @raylite.remote(max_retries=1, retry_exceptions=True)
    def flaky(path):
        first = not __import__("os").path.exists(path)
        print("flaky-first" if first else "flaky-second")
        if first:
            open(path, "w").close()
            raise ValueError("once")
        return raylite.get_runtime_context().get_task_id()

    pids = raylite.get([work.remote(i) for i in range(3)])
    chatty_ids = raylite.get([chatty.remote(i) for i in range(4)])   # 2 CPUs: 2 a worker, or so
    flaky_id = raylite.get(flaky.remote(__import__("sys").argv[1]))
    print("TASKS", *chatty_ids, flaky_id, flush=True)
    from raylite.util.state import list_tasks
    deadline = time.monotonic() + 30   # until the workers' events of them are in the store
    while time.monotonic() < deadline and len(list_tasks(
            filters=[("state", "=", "FINISHED"), ("name", "=", "chatty")])) < 4:
        time.sleep(0.1)
    d = Depth.remote()
    raylite.get(d.set.remote(7))
    Counter("served", "requests served", ("route",)).inc(5, tags={"route": "/b"})
    print("PIDS", *sorted(set(pids)), flush=True)
"""


def rl(temp, *args, check=True, env=None):
    return raylite(*args, temp=temp, check=check, timeout=60, env=env)


def _get(url: str, headers=None) -> tuple[int, str, dict]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", u.path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """(temp, metrics URL, token, driver output, session dir) after the driver above ran."""
    temp = tmp_path_factory.mktemp("metrics") / "t"
    out = rl(temp, "start", "--head", "--port", "0", "--num-cpus", "2",
             "--metrics-export-port", "0", check=False)
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        url = re.search(r"Prometheus metrics: +(\S+)", out.stdout).group(1)
        token = re.search(r"RAYLITE_CLUSTER_TOKEN=([0-9a-f]+)", out.stdout).group(1)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        driver = subprocess.run([sys.executable, "-c", textwrap.dedent(DRIVER),
                                 str(temp / "flaky-ran")], text=True,
                                capture_output=True, timeout=120,
                                env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
        assert driver.returncode == 0, driver.stderr
        [session] = [p for p in temp.iterdir() if p.name.startswith("session_")]
        yield temp, url, token, driver, session
    finally:
        rl(temp, "stop", check=False)


def _status_metrics(temp) -> str:
    deadline = time.monotonic() + 30   # the workers report every 0.5 s
    text = ""
    while time.monotonic() < deadline:
        text = rl(temp, "status", "--metrics").stdout
        if "queue_depth" in text and "route=/a  3" in text:
            break
        time.sleep(0.2)
    return text


def test_status_metrics_sums_every_process(head):
    temp = head[0]
    text = _status_metrics(temp)
    assert "metrics (4 series)" in text, text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "latency_s histogram - count 3, sum 0.6, mean 0.2" in lines, text
    assert "queue_depth gauge - 7" in lines
    assert "served counter route=/a 3" in lines and "served counter route=/b 5" in lines


def test_the_metrics_endpoint_needs_the_token(head):
    _, url, token, _, _ = head
    status, body, headers = _get(url)
    assert status == 401 and "Bearer" in headers["www-authenticate"] and "served" not in body
    for bad in ("Bearer " + "0" * 64, "Bearer ", "Basic " + token, token):
        assert _get(url, {"Authorization": bad})[0] == 401, bad
    assert _get(url, {"Cookie": "raylite_dashboard=forged"})[0] == 401
    base = url.rpartition("/metrics")[0]
    assert _get(base + "/", {"Authorization": f"Bearer {token}"})[0] == 404   # metrics only
    assert _get(base + "/login")[0] == 404


def test_the_metrics_endpoint_exports_user_and_cluster_metrics(head):
    temp, url, token, _, _ = head
    _status_metrics(temp)
    status, body, headers = _get(url, {"Authorization": f"Bearer {token.upper()}"})
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = body.splitlines()
    for line in ('served{route="/a"} 3', 'served{route="/b"} 5', "queue_depth 7",
                 'latency_s_bucket{le="0.1"} 1', 'latency_s_bucket{le="1"} 3',
                 'latency_s_bucket{le="+Inf"} 3', "latency_s_count 3",
                 "# TYPE served counter", "# TYPE latency_s histogram",
                 'raylite_nodes{state="ALIVE"} 1', 'raylite_actors{state="DEAD"} 1',
                 "raylite_metrics_dropped_total 0"):
        assert line in lines, (line, body)
    assert any(re.fullmatch(r'raylite_node_cpu_total\{node_id="[0-9a-f]{32}"\} 2', x) for x in lines)
    assert any(x.startswith("raylite_workers{") for x in lines)
    assert any(re.fullmatch(r'raylite_node_spilled_bytes_total\{node_id="[0-9a-f]{32}"\} 0', x)
               for x in lines)  # nothing spilled here; the count is there
    assert "# TYPE raylite_node_spill_failures_total counter" in lines


def test_the_driver_draws_the_bars_and_prints_worker_output_whole(head):
    driver = head[3]
    for i in range(3):
        assert re.search(rf"^\(work pid=\d+\) out-line-{i}$", driver.stdout, re.M), driver.stdout
        assert re.search(rf"^\(work pid=\d+\) err-line-{i}$", driver.stderr, re.M), driver.stderr
    # (the driver may exit before a bar's last state arrives; its first line always has)
    assert re.search(r"^bar0: \(pid=\d+\) +\d+%\|", driver.stderr, re.M), driver.stderr


def test_worker_output_is_kept_in_files_after_the_task(head):
    temp, _, _, driver, session = head
    pids = driver.stdout.split("PIDS", 1)[1].split("TASKS")[0].split()
    listing = rl(temp, "logs").stdout
    assert "worker:" in listing
    for pid in pids:
        assert re.search(rf"worker-[0-9a-f]{{32}}-{pid}\.out", listing), listing
        out = rl(temp, "logs", "--pid", pid).stdout
        err = rl(temp, "logs", "--pid", pid, "--err").stdout
        assert "out-line-" in out and "err-line-" not in out
        assert "err-line-" in err
    lines = "".join(rl(temp, "logs", "--pid", p, "--tail", "-1").stdout for p in pids)
    assert sorted(x for x in lines.splitlines() if x.startswith("out-line-")) == \
        ["out-line-0", "out-line-1", "out-line-2"]
    out = rl(temp, "logs", "--pid", "1", check=False)
    assert out.returncode == 1 and "no out log of a worker with pid 1" in out.stderr
    assert oct(os.stat(session / "logs").st_mode & 0o777) == "0o700"


def test_logs_of_one_task_by_its_id(head):
    temp, _, _, driver, _ = head
    ids = driver.stdout.split("TASKS", 1)[1].split()
    chatty, flaky = ids[:4], ids[4]
    for i, tid in enumerate(chatty):
        assert rl(temp, "logs", "--task-id", tid).stdout == f"chatty-{i}-a\nchatty-{i}-c\n"
        assert rl(temp, "logs", "--task-id", tid, "--err").stdout == f"chatty-{i}-b\n"
    from raylite.util.state import get_log
    assert list(get_log(task_id=chatty[0], tail=1, _temp_dir=str(temp))) == ["chatty-0-c\n"]
    assert rl(temp, "logs", "--task-id", flaky).stdout == "flaky-second\n"  # the latest attempt
    assert rl(temp, "logs", "--task-id", flaky, "--attempt", "0").stdout == "flaky-first\n"
    out = rl(temp, "logs", "--task-id", flaky, "--attempt", "3", check=False)
    assert out.returncode == 1 and "has no attempt 3; its attempts: 0, 1" in out.stderr
    out = rl(temp, "logs", "--task-id", "ab" * 16, check=False)
    assert out.returncode == 1 and "no task 'abababab" in out.stderr
    # the markers stay in the files: neither the driver nor a whole file's reader sees them
    assert ":raylite_task_" not in driver.stdout + driver.stderr
    pids = driver.stdout.split("PIDS", 1)[1].split("TASKS")[0].split()
    for pid in pids:
        assert ":raylite_task_" not in rl(temp, "logs", "--pid", pid, "--tail", "-1").stdout


TICKER = """
    import sys, time
    import raylite
    raylite.init(address="auto")

    @raylite.remote
    def ticker(go):
        for i in range(4):
            print(f"tick {i}", flush=True)
            while not __import__("os").path.exists(go + str(i)):  # the test says when
                time.sleep(0.05)
        return 1

    print(raylite.get(ticker.remote(sys.argv[1])), flush=True)
    sys.stdin.read()
"""


def test_following_a_running_tasks_log_ends_with_the_task(head, tmp_path):
    import json

    temp = head[0]
    go = str(tmp_path / "go")
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(TICKER), go],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    follow = None
    try:
        deadline, running = time.monotonic() + 60, []
        while not running and time.monotonic() < deadline:
            rows = json.loads(rl(temp, "list", "tasks", "--filter", "name=ticker",
                                 "--format", "json").stdout)
            running = [r for r in rows if r["state"] == "RUNNING"]
            time.sleep(0.1)
        assert running, "the ticker task did not start"
        follow = subprocess.Popen([sys.executable, "-m", "raylite", "logs", "--task-id",
                                   running[0]["task_id"], "--follow", "--temp-dir", str(temp)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = [follow.stdout.readline()]
        for i in range(4):
            open(go + str(i), "w").close()            # the task goes on: tick i+1, or returns
            if i < 3:
                seen.append(follow.stdout.readline())  # each line while the task still runs
        out, err = follow.communicate(timeout=60)      # it ends once the task has ended
        assert follow.returncode == 0, err
        assert seen + out.splitlines(keepends=True) == [f"tick {i}\n" for i in range(4)]
    finally:
        if follow is not None and follow.poll() is None:
            follow.kill()
            follow.wait()
        for i in range(4):   # let the task end, and the driver with it
            open(go + str(i), "w").close()
        try:
            driver.communicate(timeout=30)   # (closes its stdin: it ends)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()


def test_logs_stay_after_stop_until_the_next_head(head, tmp_path):
    temp, _, _, driver, session = head
    pid = driver.stdout.split("PIDS", 1)[1].split()[0]
    out = rl(temp, "stop")
    assert "stopped head" in out.stdout
    assert sorted(os.listdir(session)) == ["logs"]          # token, node.json, spill dir gone
    assert "out-line-" in rl(temp, "logs", "--pid", pid).stdout   # read after the stop
    assert "no running raylite cluster" in rl(temp, "stop").stdout
    assert session.exists()                                  # a second stop leaves it
    rl(temp, "start", "--head", "--port", "0", "--num-cpus", "1")
    try:
        assert not session.exists()                          # the next head removes it
        listing = rl(temp, "logs").stdout
        assert f"-{pid}.out" not in listing
    finally:
        rl(temp, "stop")
    assert not [p for p in temp.iterdir() if p.name.startswith("session_")]  # nothing printed
