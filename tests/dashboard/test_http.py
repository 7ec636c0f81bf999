"""The dashboard over HTTP, against a real cluster (conftest.py): login, every page's
content, filters and paging, the log tail, the flags that keep it closed, and `raylite stop`."""
import json
import re
import os
import subprocess
import sys
import time
import urllib.parse

import psutil
import pytest



def raylite(*args, temp, timeout=60):
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", temp],
                          capture_output=True, text=True, timeout=timeout)

PAGES = ("/", "/jobs", "/actors", "/tasks", "/tasks?view=timeline", "/objects", "/metrics/view",
         "/logs", "/logs/view?name=dash-test.log")


def test_every_page_needs_a_login(cluster):
    for path in PAGES:
        status, headers, _ = cluster.request("GET", path)
        assert status == 303 and headers["location"] == "/login", path
    status, _, _ = cluster.request("GET", "/logs/tail?name=dash-test.log&offset=0")
    assert status == 401
    status, _, _ = cluster.request("GET", "/", cookie="forged-cookie-value")
    assert status == 303
    status, _, body = cluster.request("GET", "/login")
    assert status == 200 and 'name=token' in body


def test_wrong_token_and_wrong_code_are_refused(cluster):
    status, headers, body = cluster.request("POST", "/login", "token=" + "0" * 64)
    assert status == 401 and "set-cookie" not in headers and "not this cluster" in body
    status, headers, _ = cluster.request("GET", "/login?code=guessed")
    assert status == 401 and "set-cookie" not in headers


def test_the_one_time_url_works_once(cluster):
    status, headers, _ = cluster.request("GET", f"/login?code={cluster.code}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    for part in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert part in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert cluster.request("GET", "/", cookie=value)[0] == 200
    status, headers, _ = cluster.request("GET", f"/login?code={cluster.code}")
    assert status == 401 and "set-cookie" not in headers


def test_logout_ends_the_session(cluster, cookie):
    assert cluster.request("GET", "/jobs", cookie=cookie)[0] == 200
    assert cluster.request("POST", "/logout", "", cookie=cookie)[0] == 303
    assert cluster.request("GET", "/jobs", cookie=cookie)[0] == 303


def test_pages_say_nothing_is_fetched_from_elsewhere(cluster, cookie):
    status, headers, body = cluster.request("GET", "/", cookie=cookie)
    assert status == 200
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", body)
    assert "<script>" not in body  # only the dashboard's own /static/app.js


def test_overview_shows_the_node_resources_and_plots(cluster, cookie):
    status, _, body = cluster.request("GET", "/", cookie=cookie)
    assert status == 200
    assert cluster.address in body and 'id="nodes-table"' in body
    assert "CPU used / total" in body and "<svg" in body
    assert "2 / 2" in body  # both CPUs leased to the driver's sleeping tasks
    assert "actors: 1 ALIVE" in body


def test_jobs_page_lists_the_driver(cluster, cookie):
    status, _, body = cluster.request("GET", "/jobs", cookie=cookie)
    assert status == 200 and 'id="jobs-table"' in body and "alive" in body


def test_actors_page_and_its_filters(cluster, cookie):
    _, _, body = cluster.request("GET", "/actors", cookie=cookie)
    assert "DashCounter" in body and "dash-counter" in body
    _, _, body = cluster.request("GET", "/actors?state=ALIVE&class=dashcount", cookie=cookie)
    assert "dash-counter" in body
    _, _, body = cluster.request("GET", "/actors?state=DEAD", cookie=cookie)
    assert "dash-counter" not in body and "no actors match" in body


def _task_rows(body):
    return body.count('<span class="state state-')


def test_tasks_page_filters_and_pages(cluster, cookie):
    def all_seven():  # workers send their events in batches: wait (bounded) for the ends too
        running = cluster.request("GET", "/tasks?state=RUNNING", cookie=cookie)[2]
        done = cluster.request("GET", "/tasks?state=FINISHED", cookie=cookie)[2]
        return cluster.request("GET", "/tasks", cookie=cookie)[2] \
            if _task_rows(running) == 2 and _task_rows(done) == 2 else None
    body = cluster.wait_for(all_seven)
    assert body, "the 2 running tasks and the actor's 2 finished ones did not show"
    assert _task_rows(body) == 7  # the actor's creation, its finished call, 2 running and 3 queued
    assert "oldest finished first out" in body and "DashCounter.add" in body
    _, _, body = cluster.request("GET", "/tasks?state=RUNNING", cookie=cookie)
    assert _task_rows(body) == 2 and "sleeper" in body and "queued_work" not in body
    _, _, body = cluster.request("GET", "/tasks?state=FINISHED", cookie=cookie)
    assert _task_rows(body) == 2 and "DashCounter.add" in body and "DashCounter.__init__" in body
    _, _, body = cluster.request("GET", "/tasks?name=queued", cookie=cookie)
    assert _task_rows(body) == 3 and "sleeper" not in body
    _, _, body = cluster.request("GET", "/tasks?per=2&page=3", cookie=cookie)
    assert _task_rows(body) == 2 and "page 3 of 4" in body and "5&ndash;6 of 7" in body
    _, _, body = cluster.request("GET", "/tasks?per=2&page=1&name=queued", cookie=cookie)
    assert "page=2" in body and "name=queued" in body  # the next page keeps the filter
    _, _, body = cluster.request("GET", "/tasks?page=abc&per=-4", cookie=cookie)
    assert _task_rows(body) == 7  # bad paging input falls back to the defaults


def test_tasks_timeline_draws_a_span_per_attempt_that_ran(cluster, cookie):
    def spans():
        body = cluster.request("GET", "/tasks?view=timeline", cookie=cookie)[2]
        return body if body.count('class="span ') == 4 else None
    body = cluster.wait_for(spans)
    assert body, "the actor's __init__ and call and the 2 running tasks are not 4 spans"
    assert '<svg id=timeline' in body and 'id="view-timeline" class=active' in body
    assert body.count('span-RUNNING') == 2 and 'data-name="DashCounter.add"' in body
    assert "queued_work" not in body  # never ran: no span
    assert "4 spans on 3 workers" in body and "(pid " in body
    _, _, body = cluster.request("GET", "/tasks?view=timeline&name=sleeper&window=600",
                                 cookie=cookie)
    assert body.count('class="span ') == 2 and "DashCounter" not in body.split("<svg")[1]
    assert 'name="view" value="timeline"' in body  # the filter form stays on the timeline
    _, _, body = cluster.request("GET", "/tasks?view=timeline&state=PENDING_ARGS_AVAIL",
                                 cookie=cookie)
    assert "no task ran in this window" in body


def test_a_tasks_output_from_the_tasks_page(cluster, cookie):
    def linked():
        body = cluster.request("GET", "/tasks?state=RUNNING", cookie=cookie)[2]
        return body if _task_rows(body) == 2 else None
    body = cluster.wait_for(linked)
    sleepers = re.findall(r'href="(/tasks/log\?task_id=[0-9a-f]{32}&amp;attempt=0)"', body)
    assert len(sleepers) == 2
    outputs = {cluster.request("GET", u.replace("&amp;", "&"), cookie=cookie)[2]
               .split("<pre id=task-log>")[1].split("</pre>")[0] for u in sleepers}
    assert outputs == {"sleeper 0 starts\n", "sleeper 1 starts\n"}  # each its own lines
    def finished_add():  # its worker's FINISHED comes in a later batch (bounded wait)
        body = cluster.request("GET", "/tasks?state=FINISHED&name=DashCounter.add",
                               cookie=cookie)[2]
        return body if _task_rows(body) == 1 else None
    body = cluster.wait_for(finished_add)
    assert body, "the actor call did not show as finished"
    [add] = re.findall(r'href="/tasks/log\?task_id=([0-9a-f]{32})', body)
    status, _, body = cluster.request("GET", f"/tasks/log?task_id={add}", cookie=cookie)
    assert status == 200 and "DashCounter.add" in body
    assert "<pre id=task-log>adding 1 &lt;b&gt;\n</pre>" in body  # escaped
    status, _, body = cluster.request("GET", f"/tasks/log?task_id={add}&err=1", cookie=cookie)
    assert status == 404 and "printed nothing" in body  # its worker has no stderr file
    status, _, body = cluster.request("GET", "/tasks/log?task_id=" + "ab" * 16, cookie=cookie)
    assert status == 404 and "no task" in body
    status, headers, _ = cluster.request("GET", f"/tasks/log?task_id={add}")
    assert status == 303 and headers["location"] == "/login"  # a login first, as everywhere


def test_metrics_page_shows_the_cluster_and_the_users_metrics(cluster, cookie):
    def counted():
        body = cluster.request("GET", "/metrics/view", cookie=cookie)[2]
        ok = "dash_requests" in body and "tasks running: <span class=value>2</span>" in body
        return body if ok else None
    body = cluster.wait_for(counted, timeout=30)
    assert body, "the driver's counter or a sample with the 2 running tasks did not show"
    assert "polyline" in body.split('id="metric-tasks_running"')[1].split("</div>")[0]
    row = [r for r in body.split("<tr>") if "dash_requests" in r][0]
    assert "counter" in row and "route=/a" in row and "<td>3</td>" in row
    assert "requests served" in row
    for key in ("tasks_running", "workers", "store_bytes", "spilled_bytes"):
        assert f'id="metric-{key}"' in body
    _, _, body = cluster.request("GET", "/metrics/view?name=nothing-like-it", cookie=cookie)
    assert "no metrics match" in body and "dash_requests" not in body.split("Your metrics")[1]


def test_objects_page_shows_where_bytes_are(cluster, cookie):
    _, _, body = cluster.request("GET", "/objects", cookie=cookie)
    big = re.compile(r"<td>2,09\d,\d{3}</td><td>SHARED_MEMORY</td>")  # 2 MiB and its header
    assert big.search(body) and "<td>INLINE</td>" in body and "<td>PENDING</td>" in body
    _, _, body = cluster.request("GET", "/objects?state=SHARED_MEMORY", cookie=cookie)
    assert big.search(body) and "<td>INLINE</td>" not in body


def test_log_list_view_and_tail_follow(cluster, cookie):
    _, _, body = cluster.request("GET", "/logs", cookie=cookie)
    assert "dash-test.log" in body and "raylite_head.log" in body
    _, _, body = cluster.request("GET", "/logs/view?name=dash-test.log", cookie=cookie)
    assert "first line of the test log" in body
    offset = int(body.split('data-offset="')[1].split('"')[0])
    with open(cluster.log_file, "a") as f:
        f.write("a line written later\n")
    status, _, text = cluster.request("GET", f"/logs/tail?name=dash-test.log&offset={offset}",
                                      cookie=cookie)
    got = json.loads(text)
    assert status == 200 and got["text"] == "a line written later\n" and not got["reset"]
    assert got["offset"] == os.path.getsize(cluster.log_file)
    got = json.loads(cluster.request("GET", "/logs/tail?name=dash-test.log&offset=999999",
                                     cookie=cookie)[2])
    assert got["reset"] and "first line" in got["text"]  # the file shrank: start again


def test_log_names_outside_the_list_reach_nothing(cluster, cookie):
    for name in ("../token", cluster.session + "/token", "../../raylite_current_cluster", "x"):
        q = urllib.parse.urlencode({"name": name, "offset": 0})
        assert cluster.request("GET", f"/logs/tail?{q}", cookie=cookie)[0] == 404
        assert cluster.request("GET", f"/logs/view?{q}", cookie=cookie)[0] == 404


def test_a_huge_form_is_refused(cluster):
    status, _, _ = cluster.request("POST", "/login", "token=" + "a" * 10000)
    assert status == 413
    status, _, _ = cluster.request("POST", "/login", "&".join(f"f{i}=1" for i in range(50)))
    assert status == 400
    status, _, _ = cluster.request("GET", "/login?" + "&".join(f"f{i}=1" for i in range(50)))
    assert status == 400
    assert cluster.request("GET", "/login")[0] == 200  # and it still serves


def test_escapes_what_it_shows(cluster, cookie):
    _, _, body = cluster.request("GET", "/actors?name=%3Cscript%3Ealert(1)%3C/script%3E",
                                 cookie=cookie)
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body


def test_dashboard_refuses_a_public_host_without_the_flag(cluster):
    out = raylite("dashboard", "--host", "0.0.0.0", "--port", "0", temp=cluster.temp)
    assert out.returncode == 2 and "--allow-remote" in out.stderr


def test_dashboard_without_a_cluster_says_what_to_do(tmp_path):
    d = tmp_path / "empty"
    d.mkdir(mode=0o700)
    out = raylite("dashboard", "--port", "0", temp=str(d))
    assert out.returncode == 1 and "raylite start --head" in out.stderr


def test_dashboard_port_needs_head(tmp_path):
    out = raylite("start", "--address", "127.0.0.1:1", "--dashboard-port", "0", temp=str(tmp_path))
    assert out.returncode == 2 and "--dashboard-port goes with --head" in out.stderr


def test_raylite_dashboard_serves_in_the_foreground(cluster):
    proc = subprocess.Popen([sys.executable, "-m", "raylite", "dashboard", "--port", "0",
                             "--temp-dir", cluster.temp], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("raylite dashboard at http://127.0.0.1:")
        url = proc.stdout.readline().split()[-1]
        parts = urllib.parse.urlsplit(url)
        import http.client
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("GET", f"{parts.path}?{parts.query}")
        r = conn.getresponse()
        assert r.status == 303 and "HttpOnly" in r.getheader("Set-Cookie")
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_the_dashboard_stays_small(cluster, cookie):
    pid = int(open(os.path.join(cluster.temp, "raylite_dashboard")).read().split()[1])
    for _ in range(30):
        for path in ("/", "/tasks", "/objects", "/actors", "/tasks?view=timeline",
                     "/metrics/view"):
            assert cluster.request("GET", path, cookie=cookie)[0] == 200
    rss = psutil.Process(pid).memory_info().rss
    assert rss < 40 * 2**20, f"dashboard RSS {rss / 2**20:.1f} MiB"


@pytest.mark.parametrize("force", [False, True])
def test_raylite_stop_stops_the_dashboard(tmp_path, force):
    temp = str(tmp_path / "t")
    out = raylite("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "0",
                  temp=temp)
    try:
        assert out.returncode == 0, out.stderr
        pid = int(open(os.path.join(temp, "raylite_dashboard")).read().split()[1])
        assert psutil.pid_exists(pid)
        out = raylite("stop", *(["--force"] if force else []), temp=temp)
        assert "stopped the dashboard" in out.stdout
        assert not os.path.exists(os.path.join(temp, "raylite_dashboard"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the dashboard outlived `raylite stop`")
    finally:
        raylite("stop", "--force", temp=temp)


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_dashboard_ends_once_its_head_is_gone(tmp_path):
    import signal

    temp = str(tmp_path / "t")
    out = raylite("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "0",
                  temp=temp)
    try:
        assert out.returncode == 0, out.stderr
        record = os.path.join(temp, "raylite_dashboard")
        pid = int(open(record).read().split()[1])
        head = int(open(os.path.join(temp, "raylite_current_cluster")).read().split()[1])
        os.killpg(head, signal.SIGKILL)  # the head dies without a word (no `raylite stop`)
        deadline = time.monotonic() + 20  # it samples every 5 s
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(pid), "the dashboard outlived its head"
        assert not os.path.exists(record)
    finally:
        raylite("stop", "--force", temp=temp)


def test_metrics_on_the_dashboard_port_need_a_login_or_the_token(cluster, cookie):
    status, headers, body = cluster.request("GET", "/metrics")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert "raylite_nodes" not in body
    assert cluster.request("GET", "/metrics", headers={"Authorization": "Bearer nope"})[0] == 401
    for how in (dict(cookie=cookie), dict(headers={"Authorization": f"Bearer {cluster.token}"})):
        status, headers, body = cluster.request("GET", "/metrics", **how)
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'raylite_nodes{state="ALIVE"} 1' in body.splitlines()
        assert 'raylite_actors{state="ALIVE"} 1' in body.splitlines()   # the driver's actor
    # a bearer token makes no session: the session table stays as it was
    assert cluster.request("GET", "/", headers={"Authorization": f"Bearer {cluster.token}"})[0] == 303


def test_one_process_serves_the_dashboard_and_the_metrics_port(tmp_path):
    import http.client

    temp = str(tmp_path / "t")
    out = raylite("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "0",
                  "--metrics-export-port", "0", temp=temp)
    try:
        assert out.returncode == 0, out.stderr
        metrics = re.search(r"Prometheus metrics: +(\S+)", out.stdout).group(1)
        assert "log in once with" in out.stdout
        session = open(os.path.join(temp, "raylite_current_cluster")).read().split()[2]
        token = open(os.path.join(session, "token")).read().strip()
        u = urllib.parse.urlsplit(metrics)

        def get(path, headers=None):
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            try:
                conn.request("GET", path, headers=headers or {})
                r = conn.getresponse()
                return r.status, r.read().decode()
            finally:
                conn.close()

        assert get("/metrics")[0] == 401
        status, body = get("/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200 and "raylite_node_cpu_total" in body
        assert get("/", {"Authorization": f"Bearer {token}"})[0] == 404   # no pages there
        pid = int(open(os.path.join(temp, "raylite_dashboard")).read().split()[1])
        out = raylite("stop", temp=temp)
        assert "stopped the dashboard" in out.stdout
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
    finally:
        raylite("stop", "--force", temp=temp)


def test_metrics_export_port_needs_head(tmp_path):
    out = raylite("start", "--address", "127.0.0.1:1", "--metrics-export-port", "0",
                  temp=str(tmp_path / "t"))
    assert out.returncode == 2 and "--metrics-export-port goes with --head" in out.stderr
