"""The timeline view and the metrics page's parts, without a cluster: spans laid out per
worker and clipped to the window, the bounded ring of named series, the values sampled."""
import math

from raylite._core.metrics import MetricSeries
from raylite._core.records import (ActorRecord, NodeRecord, ObjectRecord, StateSnapshot,
                                   TaskEventRecord, WorkerRecord)
from raylite._core.trace import trace_events
from raylite.dashboard import series, timeline


def _task(tid, pid, start_s, end_s, state="FINISHED", name="f", worker="w1"):
    return TaskEventRecord(tid, 0, name, state, "j", None, "NORMAL_TASK", name, "n" * 32,
                           worker * 16, pid, None, None, 0, None, None, "o", "127.0.0.1:5",
                           (), int(start_s * 1e6), None if end_s is None else int(end_s * 1e6))


def test_spans_go_on_their_workers_row_and_are_clipped_to_the_window():
    recs = [_task("a" * 32, 11, 100.0, 100.5), _task("b" * 32, 12, 95.0, 99.5, worker="w2"),
            _task("c" * 32, 11, 30.0, 31.0), _task("d" * 32, 12, 99.8, None, "RUNNING",
                                                    worker="w2")]
    now = int(101 * 1e6)
    lanes, x0, x1 = timeline.layout_spans(trace_events(recs, now), now, window=10.0)
    assert [len(lane.spans) for lane in lanes] == [1, 2]   # "c" ended before the window
    assert "pid 11" in lanes[0].label[0] and "pid 12" in lanes[1].label[0]
    assert lanes[0].label[1].startswith("node nnnn")
    assert x0 == int(91 * 1e6) and x1 == now
    running = [s for s in lanes[1].spans if s.args["state"] == "RUNNING"][0]
    assert running.end_us == now                            # still running: up to now
    everything, x0, _ = timeline.layout_spans(trace_events(recs, now), now, window=None)
    assert sum(len(lane.spans) for lane in everything) == 4 and x0 == int(30 * 1e6)


def test_the_svg_has_a_rect_per_span_with_its_ids_escaped():
    recs = [_task("a" * 32, 11, 100.0, 100.5, name="<script>x</script>"),
            _task("b" * 32, 11, 100.6, 100.9, state="FAILED")]
    now = int(101 * 1e6)
    lanes, x0, x1 = timeline.layout_spans(trace_events(recs, now), now, window=60.0)
    out = timeline.svg(lanes, x0, x1, now)
    assert out.count("<rect x=") - 1 == 2                 # one row background, two spans
    assert 'data-task="' + "a" * 32 in out and "span-FAILED" in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "no task ran" in timeline.svg([], 0, 1, now)


def test_the_window_comes_from_the_query():
    assert timeline.window_of({}) is None and timeline.window_of({"window": "all"}) is None
    assert timeline.window_of({"window": "10"}) == 10.0
    assert timeline.window_of({"window": "-3"}) is timeline.window_of({"window": "nan"}) is None


def test_series_keep_the_last_window_and_forget_old_ones():
    h = series.SeriesHistory(interval=5.0, window=60.0)
    for i in range(100):
        values = {"a": float(i)}
        if i < 20:
            values["gone"] = 1.0
        h.add(i * 5.0, values)
    assert h.cap == 13 and len(h) == 1                    # "gone" unseen for over a window
    pts = h.points("a", now=99 * 5.0)
    assert [v for _, v in pts] == [float(i) for i in range(87, 100)]
    assert pts[0][0] == 60.0 and pts[-1][0] == 0.0
    assert h.points("gone", 99 * 5.0) == []


def test_series_are_bounded_and_a_missing_sample_is_a_gap():
    h = series.SeriesHistory(interval=1.0, window=10.0, max_series=3)
    h.add(0.0, {f"s{i}": 1.0 for i in range(5)})
    assert len(h) == 3 and len(h.refused) == 2
    h.add(1.0, {"s0": 2.0})
    assert [v for _, v in h.points("s0", 1.0)] == [1.0, 2.0]
    assert [v for _, v in h.points("s1", 1.0)] == [1.0]  # not sampled at 1.0: no point
    assert all(not math.isnan(v) for _, v in h.points("s1", 1.0))


def test_cluster_and_user_values_of_a_sample():
    node = NodeRecord("n", "a", "h", True, True, {"CPU": 4.0}, {"CPU": 1.0})
    snap = StateSnapshot("t", nodes=(node, node._replace(alive=False)),
                         workers=(WorkerRecord("w", "n", 1, "IDLE", None, None),
                                  WorkerRecord("x", "n", 2, "DEAD", None, None)),
                         actors=(ActorRecord("a", "C", None, "", "ALIVE", None, 0, False, None),),
                         objects=(ObjectRecord("o1", "d", "SHARED_MEMORY", 100, 1, 0),
                                  ObjectRecord("o2", "d", "SPILLED", 50, 1, 0),
                                  ObjectRecord("o3", "d", "INLINE", 7, 1, 0)))
    rows = (("f", "NORMAL_TASK", "RUNNING", 2), ("g", "NORMAL_TASK", "RUNNING", 1),
            ("f", "NORMAL_TASK", "PENDING_ARGS_AVAIL", 4), ("f", "NORMAL_TASK", "FINISHED", 9))
    v = series.cluster_values(snap, rows)
    assert v["tasks_running"] == 3 and v["tasks_pending"] == 4 and v["tasks_finished"] == 9
    assert v["cpu_used"] == 3.0 and v["workers"] == 1 and v["actors_alive"] == 1
    assert v["store_bytes"] == 100 and v["spilled_bytes"] == 50 and v["objects"] == 2
    user = series.user_values((MetricSeries("counter", "req", "", (("route", "/a"),), 5.0),
                               MetricSeries("histogram", "lat", "", (), 2.5, count=3)))
    assert user == {"user:req{route=/a}": 5.0, "user:lat": 3.0}


def test_log_views_leave_the_task_markers_out():
    from raylite.dashboard.logs import unmarked

    text = f"a\n:raylite_task_begin:{'ab' * 16}:0\nb\n:raylite_task_end:{'ab' * 16}:0\nc"
    assert unmarked(text) == "a\nb\nc" and unmarked("plain\n") == "plain\n"


def test_overview_and_metrics_endpoint_show_the_stores_spilling():
    from raylite._core.records import SpillRecord
    from raylite.dashboard import metrics, pages
    from raylite.dashboard.history import History

    node = NodeRecord("n" * 32, "127.0.0.1:1", "h", True, True,
                      {"CPU": 2.0, "object_store_memory": 300.0 * 2**20}, {"CPU": 2.0},
                      spill=SpillRecord(4, 280 * 2**20, 1, 70 * 2**20, 1, 70 * 2**20))

    class Reader:
        address = "127.0.0.1:1"

        def state(self, kinds, owners=False):
            return StateSnapshot("t", nodes=(node,)), ()
    status, body = pages.overview(Reader(), History(5.0), {}, 100.0)
    assert status == 200
    assert ("<li class=spilling>spilling to disk now: 1 of 4 objects, 70.0 of 280.0 MiB copied "
            "(25 %)</li>") in body
    text = metrics.cluster_metrics(StateSnapshot("t", nodes=(node,)), (), 0)
    assert f'raylite_node_spilling_bytes{{node_id="{"n" * 32}"}} {280 * 2**20}' in text
    assert f'raylite_node_spilled_objects_total{{node_id="{"n" * 32}"}} 1' in text
