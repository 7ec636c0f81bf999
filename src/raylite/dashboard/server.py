"""The dashboard process: a read-only web UI of a running cluster, on the stdlib's HTTP server.

    raylite dashboard  |  raylite start --head --dashboard-port P   (python -m raylite.dashboard)
        ─► Reader (reader.py): the cluster's address and token, as `raylite status` finds them
        ─► ThreadingHTTPServer on --host (127.0.0.1 unless --allow-remote) : --port
        ─► sampler thread: every --interval s a quick state request (nodes, the store's
           objects, workers, actors), the task store's counts and the user metrics
           ─► History and SeriesHistory (bounded rings: the last hour) ─► the overview's
           and the metrics page's plots;
           with --head-pid, the dashboard ends itself once that head daemon is gone
        ─► with --metrics-port M: a second server on M, of /metrics alone (metrics.py);
           with --metrics-only, that server alone (no pages, no logins)
        ─► prints "READY <login URL> [<metrics URL>]" (the one-time code: auth.py) and serves
           until SIGTERM/Ctrl-C

    GET /metrics (on either port): Prometheus' text format of the user's metrics and the
        cluster's own, for "Authorization: Bearer <cluster token>" (compared in constant
        time by auth.Auth.token_ok) or a logged-in session; else 401

    request ─► /static/* and /login: open to all;  anything else needs the session cookie:
               no cookie: a page is redirected to /login, anything else gets 401
           ─► pages.py (overview, jobs, actors, tasks with its timeline, objects),
              metrics_page.py or logs.py, each reading the
              cluster through the Reader only, rendered on the server

Responses carry a Content-Security-Policy that allows scripts, styles and images from
the dashboard itself only (so nothing is fetched from elsewhere and no inline script
runs), `Cache-Control: no-store`, `X-Frame-Options: DENY` and `Referrer-Policy:
no-referrer` (the login URL's code never leaves in a Referer). With --record the
process writes <temp>/raylite_dashboard ("url pid") for `raylite stop`, and removes it
when it ends.
"""
from __future__ import annotations

import http.server
import ipaddress
import os
import signal
import sys
import threading
import time
import urllib.parse

from . import auth as au
from . import html as h
from . import logs, pages
from .history import History, sample_of
from .series import SeriesHistory, cluster_values, user_values
from .reader import ClusterUnavailable, Reader

MAX_BODY = 4096
PAGES_ELSEWHERE = ("/logs", "/logs/view", "/metrics/view", "/tasks/log")  # beside pages.PAGES
METRICS_KINDS = ("nodes", "jobs", "workers", "actors", "tasks", "objects")
MAX_VALUE = 200
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def login_form(error: str = "") -> str:
    err = f'<p class=error id=login-error>{h.esc(error)}</p>' if error else ""
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>log in · raylite</title>"
            '<link rel=stylesheet href="/static/app.css"></head><body><form class=login '
            f'method=post action="/login"><h1>raylite dashboard</h1>{err}'
            "<p>Open the one-time login URL the command printed, or enter the cluster token "
            "(<code>raylite start</code> printed it; it is in the session dir's "
            "<code>token</code> file).</p>"
            '<input type=password name=token id=token autocomplete=off placeholder="cluster token">'
            "<button id=login>log in</button></form></body></html>")


class Dashboard:
    """What the request handlers share: the reader, the history, the logins."""

    def __init__(self, reader: Reader, token_hex: str, interval: float, head_pid: int | None):
        self.reader = reader
        self.history = History(interval)
        self.series = SeriesHistory(interval)
        self.auth = au.Auth(token_hex, time.time())
        self.auth_lock = threading.Lock()
        self.head_pid = head_pid
        self.stopping = threading.Event()
        self.server: http.server.ThreadingHTTPServer | None = None

    def sample(self, now: float) -> None:
        """One point of the overview's plots and of the metrics page's (what answered)."""
        values: dict = {}
        try:
            snap, _ = self.reader.state(("nodes", "objects", "workers", "actors"), False)
            self.history.add(sample_of(snap, now))
            values.update(cluster_values(snap, self.reader.task_summary()))
            values.update(user_values(self.reader.metrics()[0]))
        except ClusterUnavailable:
            pass
        if values:
            self.series.add(now, values)

    def sample_forever(self) -> None:
        from raylite.cli import _records as rec

        while not self.stopping.is_set():
            self.sample(time.time())
            if self.head_pid is not None and not rec.is_daemon(self.head_pid):
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return
            self.stopping.wait(self.history.interval)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "raylite-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30
    dash: Dashboard  # set on the subclass made by serve()
    metrics_only = False  # ... and this: True on a metrics-only port (/metrics, nothing else)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's name
        pass  # no per-request log lines: the dashboard's log holds only its own errors

    # -- plumbing --------------------------------------------------------------
    def _send(self, status: int, body: str, ctype: str = "text/html; charset=utf-8",
              headers: tuple = ()) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        for k, v in SECURITY_HEADERS + tuple(headers):
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _redirect(self, where: str, headers: tuple = ()) -> None:
        self._send(303, "", headers=(("Location", where),) + tuple(headers))

    def _query(self, raw: str) -> dict:
        q = urllib.parse.parse_qs(raw, keep_blank_values=True, max_num_fields=20)
        return {k[:MAX_VALUE]: v[0][:MAX_VALUE] for k, v in q.items()}

    def _cookie(self) -> str | None:
        return au.cookie_of(self.headers.get("Cookie"))

    def _logged_in(self) -> bool:
        with self.dash.auth_lock:
            return self.dash.auth.session_ok(self._cookie(), time.time())

    # -- routes ----------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_HEAD = do_GET

    def _get(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            query = self._query(url.query)
        except ValueError:
            return self._send(400, "too many query fields", "text/plain; charset=utf-8")
        path = url.path
        if path == "/metrics":
            return self._metrics()
        if self.metrics_only:
            return self._send(404, "only /metrics is served here", "text/plain; charset=utf-8")
        if path == "/static/app.css":
            return self._send(200, h.CSS, "text/css; charset=utf-8")
        if path == "/static/app.js":
            return self._send(200, h.JS, "text/javascript; charset=utf-8")
        if path == "/login":
            return self._login_get(query)
        if not self._logged_in():
            if path in pages.PAGES or path in PAGES_ELSEWHERE:
                return self._redirect("/login")
            return self._send(401, "log in first: /login", "text/plain; charset=utf-8")
        d = self.dash
        if path in pages.PAGES:
            status, body = pages.PAGES[path](d.reader, d.history, query, time.time())
        elif path == "/metrics/view":
            from . import metrics_page

            status, body = metrics_page.page(d.reader, d.series, query, time.time())
        elif path == "/tasks/log":
            status, body = logs.task_page(d.reader, query)
        elif path == "/logs":
            status, body = logs.list_page(d.reader.log_dir())
        elif path == "/logs/view":
            status, body = logs.view_page(d.reader.log_dir(), query)
        elif path == "/logs/tail":
            status, body = logs.tail(d.reader.log_dir(), query)
            return self._send(status, body, "application/json")
        else:
            status, body = 404, h.layout("Not found", "", f"<p>No page {h.esc(path)}.</p>",
                                         refresh=False)
        self._send(status, body)

    def _metrics(self) -> None:
        """Prometheus' text: for the cluster token as a bearer token, or a logged-in session."""
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        with self.dash.auth_lock:
            ok = scheme.lower() == "bearer" and self.dash.auth.token_ok(token) or \
                self.dash.auth.session_ok(self._cookie(), time.time())
        if not ok:
            return self._send(401, "send the cluster token: Authorization: Bearer <token>",
                              "text/plain; charset=utf-8",
                              (("WWW-Authenticate", 'Bearer realm="raylite"'),))
        from .metrics import CONTENT_TYPE, exposition

        try:
            series, dropped = self.dash.reader.metrics()
            snap, missing = self.dash.reader.state(METRICS_KINDS, True)
        except ClusterUnavailable as e:
            return self._send(503, f"the cluster did not answer: {e}", "text/plain; charset=utf-8")
        self._send(200, exposition(series, dropped, snap, missing), CONTENT_TYPE)

    def _login_get(self, query: dict) -> None:
        code = query.get("code")
        if code is None:
            return self._send(200, login_form())
        with self.dash.auth_lock:
            cookie = self.dash.auth.redeem(code, time.time())
        if cookie is None:
            return self._send(401, login_form("That login link was already used or is not "
                                              "valid: enter the cluster token instead."))
        self._redirect("/", (("Set-Cookie", au.cookie_header(cookie)),))

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _post(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            return self._send(413, f"a form of at most {MAX_BODY} bytes", "text/plain; charset=utf-8")
        try:
            form = self._query(self.rfile.read(length).decode("utf-8", "replace"))
        except ValueError:
            return self._send(400, "too many form fields", "text/plain; charset=utf-8")
        if self.metrics_only:
            return self._send(404, "only /metrics is served here", "text/plain; charset=utf-8")
        if path == "/login":
            with self.dash.auth_lock:
                cookie = self.dash.auth.check_token(form.get("token", ""), time.time())
            if cookie is None:
                return self._send(401, login_form("That is not this cluster's token."))
            return self._redirect("/", (("Set-Cookie", au.cookie_header(cookie)),))
        if path == "/logout":
            with self.dash.auth_lock:
                self.dash.auth.end_session(self._cookie())
            return self._redirect("/login", (("Set-Cookie", au.cookie_header("", 0)),))
        self._send(404 if self._logged_in() else 401, "no such action", "text/plain; charset=utf-8")


def serve(dash: Dashboard, host: str, port: int,
          metrics_only: bool = False) -> http.server.ThreadingHTTPServer:
    """A server of `dash` on host:port (with metrics_only, of /metrics alone)."""
    handler = type("BoundHandler", (Handler,), {"dash": dash, "metrics_only": metrics_only})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    if dash.server is None:
        dash.server = server
    return server


def url_of(host: str, port: int) -> str:
    shown = host if ":" not in host else f"[{host}]"
    return f"http://{shown}:{port}"


def run(address: str | None, temp: str, host: str, port: int | None, interval: float,
        head_pid: int | None, record: bool, out=sys.stdout,
        metrics_port: int | None = None) -> int:
    """Serves until SIGTERM, SIGINT or (with head_pid) the head's end. Prints READY first:
    "READY <login URL>", then " <metrics URL>" with metrics_port; with port None only the
    metrics server runs ("READY <metrics URL>")."""
    from . import record as dashboard_record
    from .reader import resolve

    reader = resolve(address, temp)
    dash = Dashboard(reader, reader.token.hex(), interval, head_pid)
    servers = []
    try:
        if port is not None:
            servers.append(serve(dash, host, port))
        if metrics_port is not None:
            servers.append(serve(dash, host, metrics_port, metrics_only=True))
    except OSError:
        for server in servers:
            server.server_close()
        raise
    main, others = servers[0], servers[1:]
    urls = []
    if port is not None:
        urls.append(f"{url_of(host, main.server_address[1])}/login?code={dash.auth.code}")
    if metrics_port is not None:
        urls.append(f"{url_of(host, servers[-1].server_address[1])}/metrics")
    if record:
        dashboard_record.write(temp, urls[0].partition("?")[0], os.getpid())

    def stop(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    threads = [threading.Thread(target=dash.sample_forever, name="dashboard-sampler", daemon=True)]
    threads += [threading.Thread(target=s.serve_forever, args=(0.5,), daemon=True,
                                 name="dashboard-metrics") for s in others]
    for t in threads:
        t.start()
    print("READY " + " ".join(urls), file=out, flush=True)
    try:
        main.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        dash.stopping.set()
        for server in others:
            server.shutdown()
        for server in servers:
            server.server_close()
        if record:
            dashboard_record.remove_if_mine(temp, os.getpid())
    return 0
