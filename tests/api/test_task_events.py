"""Task events on every runtime: list_tasks / get_task / summarize_tasks read the task-event
store (finished and failed tasks too, with Ray's fields), enable_task_events turns them off,
and raylite.timeline() gives a Chrome trace. Events travel in batches (~0.5 s), so a test
waits (bounded) for what another process reports."""
import json
import time

import pytest

import raylite
from raylite.util import state

pytestmark = pytest.mark.raylite_only("raylite's own task-event store and state API")


def until(read, ok, timeout: float = 15.0):
    """read() until ok(value) (or the timeout: the last value, for the assertion to show)."""
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def test_a_task_sees_itself_running_then_is_listed_finished(ray):
    @ray.remote
    def me():
        from raylite.util.state import list_tasks

        mine = until(lambda: list_tasks(filters=[("name", "=", "me")], detail=True),
                     lambda rows: rows and rows[0]["state"] == "RUNNING")
        return [dict(t) for t in mine]

    [t] = ray.get(me.remote())
    assert t["state"] == "RUNNING" and t["type"] == "NORMAL_TASK" and t["attempt_number"] == 0
    assert t["start_time_ms"] is not None and t["end_time_ms"] is None
    [done] = until(lambda: state.list_tasks(filters=[("name", "=", "me")], detail=True),
                   lambda rows: rows and rows[0].end_time_ms is not None)
    assert done.state == "FINISHED" and done.task_id == t["task_id"]
    assert done.job_id == raylite.get_runtime_context().get_job_id()
    assert done.node_id == state.list_nodes()[0].node_id and isinstance(done.worker_pid, int)
    assert done.creation_time_ms <= done.start_time_ms <= done.end_time_ms
    assert [e["state"] for e in done.events][-1] == "FINISHED"
    assert [a.attempt_number for a in state.get_task(t["task_id"])] == [0]
    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"]["me"]["state_counts"] == {"FINISHED": 1}


def test_failed_attempts_are_kept_with_their_error_and_filters_come_before_the_limit(ray):
    @ray.remote(max_retries=1, retry_exceptions=True)
    def flaky():
        raise ValueError("always")

    @ray.remote
    def fine(i):
        return i

    ray.get([fine.remote(i) for i in range(5)])
    with pytest.raises(ValueError):
        ray.get(flaky.remote())
    with pytest.warns(UserWarning, match="1 more matched but were left out by the limit"):
        failed = state.list_tasks(filters=[("state", "=", "FAILED")], limit=1, detail=True)
    assert failed.total == 2 and len(failed) == 1  # two attempts matched; the limit cut one
    attempts = state.get_task(failed[0].task_id)
    assert sorted(a.attempt_number for a in attempts) == [0, 1]
    for a in attempts:
        assert (a.name, a.state, a.error_type) == ("flaky", "FAILED", "TASK_EXECUTION_EXCEPTION")
        assert "ValueError: always" in a.error_message
    fine_ones = until(lambda: state.list_tasks(filters=[("name", "=", "fine"),
                                                        ("state", "!=", "FAILED")]),
                      lambda rows: len(rows) == 5)  # their workers tell them, within ms
    assert len(fine_ones) == 5


def test_tasks_got_one_at_a_time_are_each_one_finished_record(ray):
    """The common loop (get(f.remote())): in a cluster each worker tells the runs it ran
    whole; none is lost, doubled or left without its run's times."""
    @ray.remote
    def one(i):
        return i

    n = 300
    assert [ray.get(one.remote(i)) for i in range(n)] == list(range(n))
    rows = until(lambda: state.list_tasks(filters=[("name", "=", "one")], detail=True, limit=1000),
                 lambda rows: len(rows) == n and all(r.end_time_ms is not None for r in rows))
    assert len({r.task_id for r in rows}) == n and {r.state for r in rows} == {"FINISHED"}
    assert all(r.creation_time_ms <= r.start_time_ms <= r.end_time_ms for r in rows)
    assert len({r.worker_pid for r in rows}) >= 1 and all(r.worker_pid for r in rows)
    assert state.summarize_tasks()["cluster"]["summary"]["one"]["state_counts"] == {"FINISHED": n}


def test_actor_calls_are_actor_tasks_and_enable_task_events_false_hides_a_task(ray):
    @ray.remote
    class Counter:
        def ping(self):
            return 1

    @ray.remote
    def hidden():
        return 2

    c = Counter.remote()
    ray.get([c.ping.remote(), c.ping.options(enable_task_events=False).remote()])
    ray.get(hidden.options(enable_task_events=False).remote())
    [call] = until(lambda: state.list_tasks(filters=[("type", "=", "ACTOR_TASK")], detail=True),
                   lambda rows: rows and rows[0].state == "FINISHED")  # the worker's word
    assert (call.name, call.func_or_class_name, call.state) == ("Counter.ping", "Counter.ping",
                                                                "FINISHED")
    assert call.actor_id == c._actor_id.hex()
    assert state.list_tasks(filters=[("name", "=", "hidden")]) == []


def test_a_nested_task_and_actor_call_name_the_task_that_submitted_them(ray):
    @ray.remote
    class Echo:
        def ping(self):
            return raylite.get_runtime_context().get_task_id()

    @ray.remote
    def child():
        return raylite.get_runtime_context().get_task_id()

    @ray.remote
    def parent(echo):
        me = raylite.get_runtime_context().get_task_id()
        return me, raylite.get(child.remote()), raylite.get(echo.ping.remote())

    me, kid, call = ray.get(parent.remote(Echo.remote()))
    rows = until(lambda: {t.task_id: t for t in state.list_tasks(detail=True)},
                 lambda rows: {me, kid, call} <= set(rows))
    assert rows[me].parent_task_id is None                  # the driver made it
    assert rows[kid].parent_task_id == me and rows[call].parent_task_id == me
    assert [t.task_id for t in state.list_tasks(filters=[("parent_task_id", "=", me)])] \
        in ([kid, call], [call, kid])


def test_an_actors_creation_is_a_task_of_its_own_finished_or_failed(ray):
    @ray.remote
    class Fine:
        def ping(self):
            return 1

    @ray.remote
    class Broken:
        def __init__(self):
            raise ValueError("no good")

        def ping(self):
            return 1

    fine, broken = Fine.remote(), Broken.remote()
    assert ray.get(fine.ping.remote()) == 1
    with pytest.raises(raylite.exceptions.RayActorError):
        ray.get(broken.ping.remote())
    kinds = lambda: {t.name: t for t in state.list_tasks(
        filters=[("type", "=", "ACTOR_CREATION_TASK")], detail=True)}
    rows = until(kinds, lambda r: r.get("Fine.__init__") and r["Fine.__init__"].state == "FINISHED"
                 and r.get("Broken.__init__") and r["Broken.__init__"].state == "FAILED")
    made, failed = rows["Fine.__init__"], rows["Broken.__init__"]
    assert made.task_id == made.actor_id == fine._actor_id.hex() and made.parent_task_id is None
    assert made.start_time_ms is not None and made.end_time_ms is not None
    assert failed.actor_id == broken._actor_id.hex() and failed.error_type == "TASK_EXECUTION_EXCEPTION"
    assert "no good" in failed.error_message
    assert [t.type for t in state.list_tasks(filters=[("name", "=", "Fine.ping")])] == ["ACTOR_TASK"]


def test_init_can_turn_task_events_off(runtime_kwargs):
    raylite.init(enable_task_events=False, **runtime_kwargs)
    try:
        @raylite.remote
        def f():
            return 1

        raylite.get([f.remote() for _ in range(3)])
        assert state.list_tasks() == []
    finally:
        raylite.shutdown()


def test_timeline_is_a_chrome_trace_with_a_span_per_run(ray, tmp_path):
    @ray.remote
    def work(i):
        time.sleep(0.01)
        return i

    ray.get([work.remote(i) for i in range(4)])
    path = tmp_path / "trace.json"
    events = until(lambda: ray.timeline(str(path)),  # a span can show RUNNING until its
                   lambda ev: sum(e["ph"] == "X" and e["args"]["state"] == "FINISHED"  # worker's
                                  for e in ev) == 4)                            # next batch
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == 4 and {s["name"] for s in spans} == {"work"}
    assert all(s["dur"] >= 10_000 and isinstance(s["ts"], int) for s in spans)  # µs
    names = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events if e["ph"] == "M"
             and e["name"] in ("process_name", "thread_name")}
    for s in spans:
        assert names[(s["pid"], None)].startswith("node ")
        assert names[(s["pid"], s["tid"])].startswith("worker ")
        assert s["args"]["state"] == "FINISHED" and s["args"]["task_id"]
    assert json.loads(path.read_text()) == events


def test_timeline_needs_init():
    with pytest.raises(RuntimeError, match="init"):
        raylite.timeline()
