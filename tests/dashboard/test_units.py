"""The dashboard's pure parts, without a cluster: the bounded history and its plot, the
logins, paging, and which log names can be served."""
import os

from raylite._core.records import NodeRecord, ObjectRecord, StateSnapshot
from raylite.dashboard import auth, history, html, logs


def _snap(cpu_free, store_bytes):
    node = NodeRecord("n" * 32, "127.0.0.1:1", "h", True, True,
                      {"CPU": 4.0, "memory": 8.0, "object_store_memory": 100.0},
                      {"CPU": cpu_free, "memory": 6.0, "object_store_memory": 100.0})
    dead = node._replace(node_id="d" * 32, alive=False)
    objs = (ObjectRecord("o1", "a", "SHARED_MEMORY", store_bytes, 1, 0),
            ObjectRecord("o2", "a", "SPILLED", 999, 1, 0))
    return StateSnapshot("test", nodes=(node, dead), objects=objs)


def test_a_sample_counts_alive_nodes_and_objects_in_memory():
    s = history.sample_of(_snap(1.0, 30), now=10.0)
    assert s == history.Sample(10.0, 3.0, 4.0, 2.0, 8.0, 30.0, 100.0)


def test_history_is_bounded_to_its_window():
    h = history.History(interval=5.0, window=60.0)
    for i in range(1000):
        h.add(history.sample_of(_snap(1.0, i), now=float(i * 5)))
    assert len(h) == 13  # 60 s / 5 s, plus the newest
    pts = h.series("store_used", "store_total", now=4995.0)
    assert [p[0] for p in pts] == [60.0 - 5 * k for k in range(13)]
    assert pts[-1][1] == 999.0


def test_history_refuses_a_bad_interval():
    try:
        history.History(interval=0)
    except ValueError as e:
        assert "interval" in str(e)
    else:
        raise AssertionError("no error")


def test_sparkline_spans_what_it_has_and_clips():
    assert "no samples yet" in history.sparkline([])
    svg = history.sparkline([(120.0, 2.0, 4.0), (0.0, 8.0, 4.0)], width=100, height=60)
    assert 'points="0.0,30.0 100.0,1.5"' in svg  # oldest at the left, over 100 % drawn at the top
    assert history.span_of([(5.0, 0, 1)]) == 60.0 and history.span_of([(7200.0, 0, 1)]) == 3600.0


def test_the_one_time_code_works_once_and_expires():
    a = auth.Auth("ab" * 32, now=0.0)
    assert a.redeem("wrong", 1.0) is None
    cookie = a.redeem(a.code, 1.0)
    assert cookie and a.session_ok(cookie, 2.0)
    assert a.redeem(a.code, 2.0) is None
    b = auth.Auth("ab" * 32, now=0.0)
    assert b.redeem(b.code, auth.CODE_TTL_S + 1) is None


def test_the_token_logs_in_and_sessions_end():
    a = auth.Auth("AB" * 32, now=0.0)
    assert a.check_token("00" * 32, 0.0) is None
    cookie = a.check_token(" " + "ab" * 32 + "\n", 0.0)  # any case, spaces trimmed
    assert a.session_ok(cookie, 1.0) and not a.session_ok("x", 1.0) and not a.session_ok(None, 1.0)
    assert not a.session_ok(cookie, auth.SESSION_TTL_S + 1)
    c2 = a.check_token("ab" * 32, 0.0)
    a.end_session(c2)
    assert not a.session_ok(c2, 1.0)


def test_sessions_are_bounded():
    a = auth.Auth("ab" * 32, now=0.0)
    first = a.check_token("ab" * 32, 0.0)
    for _ in range(auth.MAX_SESSIONS):
        a.check_token("ab" * 32, 0.0)
    assert not a.session_ok(first, 1.0) and len(a._sessions) == auth.MAX_SESSIONS


def test_cookie_parsing_and_header():
    assert auth.cookie_of("a=1; raylite_dashboard=xyz; b=2") == "xyz"
    assert auth.cookie_of("raylite_dashboardx=1") is None and auth.cookie_of(None) is None
    h = auth.cookie_header("v")
    assert "HttpOnly" in h and "SameSite=Strict" in h


def test_paging_defaults_and_bounds():
    assert html.paging({}) == (1, html.PER_PAGE)
    assert html.paging({"page": "3", "per": "10"}) == (3, 10)
    assert html.paging({"page": "0", "per": "x"}) == (1, html.PER_PAGE)
    assert html.paging({"per": "100000"}) == (1, html.MAX_PER_PAGE)
    assert "page 2 of 3" in html.pager("/t", 25, 2, 10, {"state": "RUNNING"})
    assert "state=RUNNING" in html.pager("/t", 25, 2, 10, {"state": "RUNNING"})


def test_only_listed_logs_are_served(tmp_path):
    temp = tmp_path
    session = temp / "session_x"
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "job-driver-1.log").write_text("hello\n")
    (temp / "raylite_head.log").write_text("daemon\n")
    (session / "token").write_text("secret")
    for d in (temp, session, session / "logs"):
        d.chmod(0o700)  # as raylite makes them: the listing reads only private dirs
    found = logs.sources(str(session / "logs"))
    assert sorted(found) == ["job-driver-1.log", "raylite_head.log"]
    assert logs.tail(str(session / "logs"), {"name": "../token"})[0] == 404
    status, body = logs.tail(str(session / "logs"), {"name": "job-driver-1.log", "offset": "2"})
    assert status == 200 and '"llo\\n"' in body
    os.symlink(session / "token", session / "logs" / "link.log")
    assert logs.tail(str(session / "logs"), {"name": "link.log"})[0] == 404  # no links followed
