"""Metrics and progress bars without processes: the pure series rules, the GCS's table, a
process's pending series, the public API's checks, the Prometheus text, the bar display."""
import io
import math

import pytest

from raylite._core import metrics as core
from raylite._core.metrics import MetricSeries
from raylite._gcs.metrics import MetricsTable
from raylite._protocol import messages as m
from raylite._protocol import validate
from raylite._runtime import metrics as pending_mod
from raylite._runtime import progress
from raylite.dashboard.metrics import exposition, user_metrics
from raylite.util.metrics import Counter, Gauge, Histogram


def test_observe_and_combine_follow_each_kind():
    c = core.observe(None, "counter", "c", "", (), 2.0)
    c = core.observe(c, "counter", "c", "", (), 3.0)
    assert c.value == 5.0
    g = core.observe(core.observe(None, "gauge", "g", "", (), 2.0), "gauge", "g", "", (), -1.0)
    assert g.value == -1.0
    h = None
    for v in (0.05, 0.5, 0.5, 5.0, 50.0):
        h = core.observe(h, "histogram", "h", "", (), v, (0.1, 1.0, 10.0))
    assert h.buckets == (1, 2, 1, 1) and h.count == 5 and h.value == pytest.approx(56.05)
    assert core.combine(c, c).value == 10.0
    assert core.combine(g, g._replace(value=7.0)).value == 7.0
    both = core.combine(h, h)
    assert both.buckets == (2, 4, 2, 2) and both.count == 10


def test_a_value_on_a_boundary_counts_in_that_bucket():  # Prometheus' le: value <= bound
    h = core.observe(None, "histogram", "h", "", (), 1.0, (1.0, 2.0))
    assert h.buckets == (1, 0, 0)


@pytest.mark.parametrize("bad, why", [
    (MetricSeries("counter", "1bad", "", (), 1.0), "metric name"),
    (MetricSeries("counter", "c", "", (), -1.0), ">= 0"),
    (MetricSeries("gauge", "g", "", (), math.nan), "finite"),
    (MetricSeries("gauge", "g", "", (("b", "1"), ("a", "2")), 1.0), "sorted"),
    (MetricSeries("gauge", "g", "", (("a", 1),), 1.0), "string"),
    (MetricSeries("nope", "g", "", (), 1.0), ".kind"),
    (MetricSeries("histogram", "h", "", (), 1.0, 1, (1.0,), (1,)), ".buckets"),
    (MetricSeries("histogram", "h", "", (), 1.0, 2, (1.0,), (1, 0)), ".count"),
    (MetricSeries("histogram", "h", "", (), 1.0, 1, (2.0, 1.0), (1, 0, 0)), "increasing"),
    (MetricSeries("gauge", "g", "", (), 1.0, 3), "no count"),
    (("counter", "c", "", (), 1.0, 0, (), ()), "MetricSeries"),
])
def test_a_bad_series_is_refused_with_the_reason(bad, why):
    assert why in core.problem(bad)
    # ... and a daemon refuses the whole report (validate runs before any handler)
    assert why in validate.problem(m.ReportMetrics((bad,), 0))


def test_good_reports_pass_the_daemons_check():
    h = core.observe(None, "histogram", "h", "d", (("k", "v"),), 0.5, (1.0,))
    assert validate.problem(m.ReportMetrics((h, MetricSeries("counter", "c", "", (), 1.0)), 0)) is None
    assert validate.problem(m.GetMetrics(1)) is None
    assert "dropped" in validate.problem(m.ReportMetrics((), -1))


def test_the_gcs_table_sums_keeps_gauges_bounds_and_counts_drops():
    t = MetricsTable(max_series=2)
    c = MetricSeries("counter", "c", "", (("k", "a"),), 2.0)
    t.report((c, c))
    t.report((MetricSeries("gauge", "c", "", (), 1.0),))        # same name, another kind
    t.report((MetricSeries("gauge", "g", "", (), 3.0),))
    t.report((MetricSeries("gauge", "g", "", (), 4.0),))
    t.report((MetricSeries("counter", "c", "", (("k", "b"),), 1.0),), dropped=5)  # over the bound
    assert [(s.name, s.value) for s in t.snapshot()] == [("c", 4.0), ("g", 4.0)]
    assert t.dropped == 7 and t.statistics() == {"series": 2, "names": 2, "dropped": 7}
    h1 = core.observe(None, "histogram", "h", "", (), 1.0, (1.0,))
    t2 = MetricsTable()
    t2.report((h1,))
    t2.report((h1._replace(boundaries=(2.0,)),))                 # other boundaries: refused
    assert t2.dropped == 1 and t2.snapshot() == (h1,)


def test_pending_drains_deltas_and_bounds_what_waits(monkeypatch):
    p = pending_mod.Pending()
    p.record("counter", "c", "", (), 1.0)
    p.record("counter", "c", "", (), 2.0)
    series, dropped = p.drain()
    assert [s.value for s in series] == [3.0] and dropped == 0 and not p
    assert p.drain() == ((), 0)
    monkeypatch.setattr(pending_mod, "MAX_SERIES", 1)
    p.record("gauge", "a", "", (), 1.0)
    p.record("gauge", "b", "", (), 1.0)
    assert len(p.snapshot()) == 1 and p.drain()[1] == 1


def test_the_public_api_checks_as_rays_does():
    with pytest.raises(ValueError, match="metric name"):
        Counter("bad name")
    with pytest.raises(ValueError, match="tag key"):
        Counter("c", tag_keys=("bad key",))
    with pytest.raises(TypeError):
        Counter("c", tag_keys="route")
    c = Counter("unit_c", "desc", tag_keys=("route", "code"))
    with pytest.raises(ValueError, match="Missing value for tag key"):
        c.inc(1, tags={"route": "/"})
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        c.inc(1, tags={"route": "/", "code": "200", "other": "x"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        c.inc(1, tags={"route": "/", "code": 200})
    with pytest.raises(ValueError, match="> 0"):
        c.inc(0, tags={"route": "/", "code": "200"})
    with pytest.raises(ValueError, match="finite"):
        Gauge("g").set(math.inf)
    with pytest.raises(ValueError, match="boundaries"):
        Histogram("h", boundaries=[])
    with pytest.raises(ValueError, match="greater than 0"):
        Histogram("h", boundaries=[0, 1])
    assert c.set_default_tags({"code": "200"}) is c
    c.inc(tags={"route": "/p"})                                  # the rest from the defaults
    assert any(x.name == "unit_c" and x.tags == (("code", "200"), ("route", "/p"))
               for x in pending_mod.pending().snapshot())
    assert c.info == {"name": "unit_c", "description": "desc", "tag_keys": ("route", "code"),
                      "default_tags": {"code": "200"}}
    assert Histogram("h", boundaries=[1, 2]).info["boundaries"] == [1.0, 2.0]


def test_recorded_values_wait_in_this_process():
    c = Counter("unit_recorded", tag_keys=("k",)).set_default_tags({"k": "d"})
    c.inc()
    c.inc(2.5, tags={"k": "x"})
    Histogram("unit_hist", boundaries=[1.0]).observe(3.0)
    kept = {(s.name, s.tags): s for s in pending_mod.pending().snapshot()}
    assert kept[("unit_recorded", (("k", "d"),))].value == 1.0
    assert kept[("unit_recorded", (("k", "x"),))].value == 2.5
    assert kept[("unit_hist", ())].buckets == (0, 1)


def test_prometheus_text_of_user_metrics():
    h = None
    for v in (0.5, 2.0):
        h = core.observe(h, "histogram", "lat", "latency\nseconds", (("r", 'a"b'),), v, (1.0,))
    text = "\n".join(user_metrics((MetricSeries("counter", "req", "", (("r", "/"),), 3.0), h)))
    assert "# TYPE req counter\nreq{r=\"/\"} 3" in text
    assert "# HELP lat latency seconds" in text
    assert 'lat_bucket{r="a\\"b",le="1"} 1' in text and 'lat_bucket{r="a\\"b",le="+Inf"} 2' in text
    assert 'lat_sum{r="a\\"b"} 2.5' in text and 'lat_count{r="a\\"b"} 2' in text


def test_prometheus_text_of_the_cluster():
    from raylite._core import records as rec

    snap = rec.StateSnapshot(
        "test",
        nodes=(rec.NodeRecord("n1", "h:1", "host", True, True, {"CPU": 4.0, "memory": 100.0},
                              {"CPU": 1.0, "memory": 40.0}),),
        jobs=(rec.JobRecord("j", "ns", 1, True),),
        workers=(rec.WorkerRecord("w1", "n1", 5, "IDLE", None, None),
                 rec.WorkerRecord("w2", "n1", 6, "LEASED", "l", None)),
        tasks=(rec.TaskRecord("t", "f", "RUNNING", "o", None, 0, None),
               rec.TaskRecord("t2", "f", "WAITING_FOR_LEASE", "o", None, 0, None)),
        objects=(rec.ObjectRecord("o", "a", "SHARED_MEMORY", 1000, 1, 0),))
    text = exposition((), 2, snap, ("owner",))
    for line in ('raylite_node_cpu_total{node_id="n1"} 4', 'raylite_node_cpu_used{node_id="n1"} 3',
                 'raylite_node_memory_used_bytes{node_id="n1"} 60',
                 'raylite_workers{node_id="n1",state="LEASED"} 1', "raylite_drivers 1",
                 'raylite_tasks{state="RUNNING"} 1', 'raylite_tasks{state="PENDING_NODE_ASSIGNMENT"} 1',
                 'raylite_object_bytes{state="SHARED_MEMORY"} 1000',
                 "raylite_metrics_dropped_total 2", "raylite_owners_missing 1"):
        assert line in text.splitlines(), line


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _bar(n, closed=False, bar_id="1-1", total=10):
    return progress.BarState(bar_id, "work", n, total, None, 7, closed)


def test_a_bar_off_a_terminal_prints_whole_lines_when_it_starts_and_ends():
    out = io.StringIO()
    d = progress.Display(out)
    d.update(_bar(0), now=0.0)
    d.update(_bar(5), now=1.0)                    # within LINE_S: not printed
    d.update(_bar(10, closed=True), now=2.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("work:   0%|")
    assert lines[1] == "work: 100%|" + "#" * 20 + "| 10/10 [00:02<00:00, 5.00it/s]"


def test_output_on_a_terminal_is_written_between_bars():
    out = _Tty()
    d = progress.Display(out)
    d.update(_bar(3), now=0.0)
    d.update(_bar(1, bar_id="2-1"), source=b"job1", now=0.0)  # a worker's bar: its pid shown
    d.write(out, "(f pid=7) hello\n")
    text = out.getvalue()
    before, _, after = text.partition("(f pid=7) hello\n")
    assert "\x1b[2F\x1b[J" in before          # the two bars erased first
    assert after.count("\n") == 2 and "work: (pid=7)  10%" in after   # then drawn again below
    d.update(_bar(10, closed=True), now=1.0)
    assert out.getvalue().endswith("| 1/10 [00:01<00:09, 1.00it/s]\n")  # the open one, last


def test_a_workers_bars_are_sent_in_order_and_rate_limited():
    o = progress.Outgoing()
    sent = []
    o.put(_bar(1))
    o.send_due(10.0, sent.append)
    o.put(_bar(2))
    o.send_due(10.05, sent.append)               # within SEND_S: kept
    o.put(_bar(3, closed=True))
    o.send_due(10.06, sent.append)               # closed: sent at once, the latest state only
    assert [s.n for s in sent] == [1, 3]


def test_tqdm_draws_in_a_process_without_init(capsys):
    from raylite.experimental.tqdm_ray import tqdm

    assert list(tqdm(range(3), desc="plain")) == [0, 1, 2]
    bar = tqdm(total=2)
    bar.update(2)
    bar.set_description("named")
    bar.close()
    err = capsys.readouterr().err
    assert "plain: 100%" in err and "3/3" in err and "named: 100%" in err
    with pytest.raises(ValueError, match="total"):
        tqdm(total=-1)


def test_the_display_keeps_a_bounded_set_of_open_bars(monkeypatch):
    monkeypatch.setattr(progress, "MAX_BARS", 3)
    d = progress.Display(io.StringIO())
    for i in range(5):
        d.update(_bar(1, bar_id=f"1-{i}"), source=b"job1", now=0.0)
    assert [k[1] for k in d._bars] == ["1-2", "1-3", "1-4"]


def test_shutdown_waits_only_while_workers_bars_are_open():
    d = progress.Display(io.StringIO())
    d.update(_bar(1), now=0.0)                       # the driver's own bar: not waited for
    d.wait_closed(60.0)                              # returns at once (a hang fails the test)
    d.update(_bar(1, bar_id="2-1"), source=b"job1", now=0.0)
    d.update(_bar(10, bar_id="2-1", closed=True), source=b"job1", now=1.0)
    d.wait_closed(60.0)
    d.update(_bar(1, bar_id="2-2"), source=b"job1", now=0.0)
    d.wait_closed(0.0)                               # still open: gives up after the timeout
    assert [k[1] for k in d._bars] == ["1-1", "2-2"]


def test_a_workers_log_file_is_rotated_and_bounded(tmp_path):
    from raylite._worker.output import WorkerLog

    logs = tmp_path / "logs"
    log = WorkerLog(str(logs / "worker-ab-1.out"), max_bytes=100, backup_count=2)
    for i in range(100):
        log.write(b"line %04d\n" % i)                           # 10 bytes each
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["worker-ab-1.out", "worker-ab-1.out.1", "worker-ab-1.out.2"]
    assert all(p.stat().st_size <= 100 for p in logs.iterdir())
    assert (logs / "worker-ab-1.out").read_bytes().endswith(b"line 0099\n")
    assert (logs / "worker-ab-1.out.1").read_bytes().endswith(b"line 0089\n")
    assert oct(logs.stat().st_mode & 0o777) == "0o700"
    assert oct((logs / "worker-ab-1.out").stat().st_mode & 0o777) == "0o600"
