"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright (pointed
at /usr/bin/chromium; Playwright never downloads a browser here). Logs in with the one-time
URL `raylite dashboard` prints, sees the driver's actor, filters the tasks table, follows a
log, opens a span of the tasks' timeline, filters the metrics page. Screenshots go to tests/dashboard/_artifacts/ (gitignored; CI keeps them); with
DASHBOARD_DOCS_SCREENSHOT=1 the overview's, the timeline's and the metrics page's are also
written to docs/ (dashboard.png, dashboard-timeline.png, dashboard-metrics.png).

Skips, saying why, where Chromium or the playwright package is missing (scripts/test.sh
installs Chromium when it runs as root on Debian).
"""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(HERE, "_artifacts")
DOCS_PNG = os.path.join(HERE, "..", "..", "docs", "dashboard.png")
CHROMIUM = os.environ.get("RAYLITE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network and a root user (no sandbox), as the machine's probe ran it.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _skip_reason():
    if not os.path.isfile(CHROMIUM):
        return (f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
                "(scripts/test.sh does when it runs as root on Debian)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture
def fresh_login(cluster):
    """A `raylite dashboard` process of its own (so its one-time URL is unused): its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "raylite", "dashboard", "--port", "0",
                             "--interval", "1", "--temp-dir", cluster.temp],
                            stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        yield proc.stdout.readline().split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 800})
            pg.set_default_timeout(20000)
            yield pg
        finally:
            browser.close()


def _shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, name), full_page=True)


def test_login_see_the_actor_filter_tasks_follow_a_log(cluster, fresh_login, page):
    from playwright.sync_api import expect

    base = fresh_login.partition("/login")[0]
    page.goto(base + "/actors")
    assert page.url.endswith("/login")  # not logged in: the login form, nothing else
    assert page.locator("#token").is_visible()
    _shot(page, "login.png")

    page.goto(fresh_login)  # the one-time URL: a session cookie, then the overview
    assert page.url == base + "/"
    page.locator("#nodes-table").wait_for()
    assert cluster.address in page.locator("#nodes-table").inner_text()
    expect(page.locator("#plots polyline")).to_have_count(3)
    _shot(page, "overview.png")
    assert page.context.cookies()[0]["httpOnly"] is True

    page.click("nav >> text=Actors")
    assert "dash-counter" in page.locator("#actors-table").inner_text()
    assert "DashCounter" in page.locator("#actors-table").inner_text()
    _shot(page, "actors.png")

    page.click("nav >> text=Tasks")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(7)  # the actor's creation, its finished call, 2 running and
    #                                 3 queued tasks
    page.select_option("#filter-state", "RUNNING")
    page.click("#filter-apply")
    page.wait_for_url("**/tasks?state=RUNNING*")
    expect(rows).to_have_count(2)
    assert rows.count() == 2 and "sleeper" in page.locator("#tasks-table").inner_text()
    page.select_option("#filter-state", "")
    page.fill("#filter-name", "queued")
    page.click("#filter-apply")
    page.wait_for_url("**name=queued*")
    expect(rows).to_have_count(3)
    assert rows.count() == 3 and "sleeper" not in page.locator("#tasks-table").inner_text()
    _shot(page, "tasks-filtered.png")

    page.click("nav >> text=Logs")
    page.click("text=dash-test.log")
    log = page.locator("#log")
    assert "first line of the test log" in log.inner_text()
    with open(cluster.log_file, "a") as f:
        f.write("written while the browser follows\n")
    expect(log).to_contain_text("written while the browser follows")
    _shot(page, "log-follow.png")
    if os.environ.get("DASHBOARD_DOCS_SCREENSHOT") == "1":  # (conftest clears RAYLITE_*)
        page.click("nav >> text=Overview")
        expect(page.locator("#plots polyline")).to_have_count(3)
        page.screenshot(path=DOCS_PNG)


def test_timeline_span_details_and_metrics_page(cluster, fresh_login, page):
    from playwright.sync_api import expect

    base = fresh_login.partition("/login")[0]
    page.goto(fresh_login)
    page.click("nav >> text=Tasks")
    page.click("#view-timeline")
    page.wait_for_url("**/tasks?view=timeline*")
    spans = page.locator("#timeline rect.span")
    expect(spans).to_have_count(4)  # the actor's __init__ and call, the 2 running sleepers
    detail = page.locator("#span-detail")
    assert detail.is_hidden()
    page.locator('#timeline rect.span[data-name="DashCounter.add"]').click()
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("DashCounter.add")
    expect(detail).to_contain_text("FINISHED")
    assert page.locator("#timeline rect.span.selected").count() == 1
    _shot(page, "tasks-timeline.png")
    page.click("#window-600")
    page.wait_for_url("**window=600*")
    expect(spans).to_have_count(4)
    page.locator('#timeline rect.span[data-name="DashCounter.add"]').click()
    page.click("#span-log")  # the detail's link: what that call printed
    page.wait_for_url("**/tasks/log?task_id=*")
    expect(page.locator("#task-log")).to_have_text("adding 1 <b>\n")
    _shot(page, "task-log.png")

    page.click("nav >> text=Metrics")
    page.wait_for_url(base + "/metrics/view")
    table = page.locator("#metrics-table")
    expect(table).to_contain_text("dash_requests")
    expect(table).to_contain_text("route=/a")
    expect(page.locator("#cluster-metrics .metric-card")).to_have_count(10)
    page.fill("#filter-name", "no-such-metric")
    page.click("#filter-apply")
    page.wait_for_url("**name=no-such-metric*")
    expect(page.locator("#metrics-table-empty")).to_contain_text("no metrics match")
    page.fill("#filter-name", "dash_")
    page.click("#filter-apply")
    expect(table).to_contain_text("dash_requests")
    _shot(page, "metrics.png")
    if os.environ.get("DASHBOARD_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=os.path.join(os.path.dirname(DOCS_PNG), "dashboard-metrics.png"))
        page.goto(base + "/tasks?view=timeline")
        page.locator('#timeline rect.span[data-name="DashCounter.add"]').click()
        page.screenshot(path=os.path.join(os.path.dirname(DOCS_PNG), "dashboard-timeline.png"))


def test_auto_refresh_swaps_in_new_content(cluster, fresh_login, page):
    from playwright.sync_api import expect

    page.goto(fresh_login)
    page.goto(fresh_login.partition("/login")[0] + "/logs")
    page.locator("#logs-table").wait_for()
    name = "appeared-later.log"
    with open(os.path.join(os.path.dirname(cluster.log_file), name), "w") as f:
        f.write("x\n")
    # no reload by the test: the page's own script fetches and swaps the table in (every 5 s)
    expect(page.locator("#logs-table")).to_contain_text(name, timeout=15000)
    page.uncheck("#auto-refresh")
    _shot(page, "logs-refreshed.png")
