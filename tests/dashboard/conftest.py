"""A real cluster for the dashboard tests: a head started with `raylite start --head
--dashboard-port 0` in a temp dir (loopback), a driver holding an actor, tasks in flight,
objects and a counter (util.metrics), and a log file in the session's logs/. Stopped by `raylite stop` (by pid)
at the end of the module, pass or fail.
"""
import http.client
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse

import pytest

DRIVER = textwrap.dedent("""
    import faulthandler, signal, sys, time
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the fixture's dump on a hang
    import numpy as np
    import raylite as ray

    ray.init(address="auto")

    @ray.remote
    class DashCounter:
        def __init__(self):
            self.n = 0
        def add(self):
            self.n += 1
            print("adding", self.n, "<b>")
            return self.n

    @ray.remote
    def sleeper(i):
        print(f"sleeper {i} starts", flush=True)
        time.sleep(600)

    @ray.remote
    def queued_work(i):
        return i

    from raylite.util.metrics import Counter
    served = Counter("dash_requests", description="requests served", tag_keys=("route",))
    served.inc(3, tags={"route": "/a"})

    c = DashCounter.options(name="dash-counter").remote()
    assert ray.get(c.add.remote()) == 1
    running = [sleeper.remote(i) for i in range(2)]
    queued = [queued_work.remote(i) for i in range(3)]      # no CPU left: they wait for a lease
    big = ray.put(np.zeros(2 * 2**20, dtype=np.uint8))      # 2 MiB: in shared memory
    small = ray.put("a small value")
    sys.stdout.write("READY\\n")  # one write: print's two may let a worker's line in between
    sys.stdout.flush()
    sys.stdin.read()                                         # until the test closes our stdin
""")


def raylite(*args, temp, timeout=60):
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", temp],
                          capture_output=True, text=True, timeout=timeout)


class Cluster:
    def __init__(self, temp, address, url, code, token, session, log_file):
        self.temp, self.address, self.url, self.code = temp, address, url, code
        self.token, self.session, self.log_file = token, session, log_file
        self.host, _, port = urllib.parse.urlsplit(url).netloc.rpartition(":")
        self.port = int(port)

    def request(self, method, path, body=None, cookie=None, headers=None):
        """(status, headers dict, body text); redirects are not followed."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = f"raylite_dashboard={cookie}"
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
        finally:
            conn.close()

    def login(self):
        """A session cookie, got with the cluster token through the login form."""
        status, headers, _ = self.request("POST", "/login",
                                          urllib.parse.urlencode({"token": self.token}))
        assert status == 303, status
        return headers["set-cookie"].split(";")[0].split("=", 1)[1]


@pytest.fixture(scope="module")
def cluster():
    temp = tempfile.mkdtemp(prefix="raylite-dash-")
    driver = None
    try:
        out = raylite("start", "--head", "--port", "0", "--num-cpus", "2", "--dashboard-port",
                      "0", temp=temp)
        assert out.returncode == 0, out.stdout + out.stderr
        address = out.stdout.split(" started at ")[1].split()[0]
        login_url = out.stdout.split("log in once with")[1].split()[0]
        url, _, code = login_url.partition("/login?code=")
        _, _, session = open(os.path.join(temp, "raylite_current_cluster")).read().split()
        token = open(os.path.join(session, "token")).read().strip()
        logs = os.path.join(session, "logs")
        os.makedirs(logs, mode=0o700, exist_ok=True)
        log_file = os.path.join(logs, "dash-test.log")
        with open(log_file, "w") as f:
            f.write("first line of the test log\n")
        errors = os.path.join(temp, "driver.err")
        with open(errors, "w") as err:
            driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=err, text=True,
                                      env=dict(os.environ, RAYLITE_TEMP_DIR=temp))
        seen = _lines_until_ready(driver, errors, timeout=60)
        assert "READY" in seen[-1], seen
        c = Cluster(temp, address, url, code, token, session, log_file)
        c.wait_for = _wait_for
        yield c
    finally:
        if driver is not None:
            driver.stdin.close()
            try:
                driver.wait(timeout=20)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait()
        raylite("stop", "--force", temp=temp)
        shutil.rmtree(temp, ignore_errors=True)


def _lines_until_ready(driver, errors, timeout):
    """The driver's lines up to READY (workers' lines come too), waited for `timeout` s at
    most: past it the driver's threads are dumped (faulthandler, SIGUSR1) into the
    failure's message, so a hang fails this module at once, saying where, instead of
    holding the whole run until its timeout (the fixture then stops the driver, which ends
    the reading thread)."""
    lines: queue.SimpleQueue = queue.SimpleQueue()

    def read():
        for line in driver.stdout:
            lines.put(line)
            if "READY" in line:
                return
        lines.put("")  # end of its output

    threading.Thread(target=read, daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if not line or "READY" in line:
            return seen
    if driver.poll() is None:
        driver.send_signal(signal.SIGUSR1)
        time.sleep(1)
    with open(errors) as f:
        dump = f.read()[-6000:]
    raise AssertionError(f"the driver printed no READY in {timeout} s: {seen}\n{dump}")


def _wait_for(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


@pytest.fixture
def cookie(cluster):
    return cluster.login()
