"""The state API's pure parts: filters, the limit, partial results, rows in Ray's schema, and
the CLI's formats. No processes; each test well under 50 ms."""
import json
import warnings

import pytest

from raylite._core.records import (ActorRecord, JobRecord, NodeRecord, ObjectRecord,
                                   StateSnapshot, TaskRecord, WorkerRecord)
from raylite.cli import state as cli
from raylite.util.state import common, schema
from raylite.util.state.common import RayStateApiException

ROWS = [{"task_id": f"{i:02x}", "state": "RUNNING" if i % 3 == 0 else "PENDING_NODE_ASSIGNMENT",
         "attempt_number": i % 2, "actor_id": None} for i in range(30)]


def test_filters_apply_before_the_limit():
    out = common.select(ROWS, [("state", "=", "RUNNING")], 5)
    assert [r["task_id"] for r in out] == ["00", "03", "06", "09", "0c"]
    assert out.total == 10 and len(out.partial) == 1 and "5 more matched" in out.partial[0]
    assert common.select(ROWS, [("state", "=", "RUNNING")], 10).partial == []


def test_strings_compare_case_insensitively_and_other_types_by_text():
    assert len(common.select(ROWS, [("state", "=", "running")], None)) == 10
    assert len(common.select(ROWS, [("state", "!=", "Running")], None)) == 20
    assert len(common.select(ROWS, [("attempt_number", "=", "1")], None)) == 15
    assert len(common.select(ROWS, [("attempt_number", "=", 1)], None)) == 15
    assert len(common.select(ROWS, [("actor_id", "=", "None")], None)) == 30
    rows = [{"is_alive": True}, {"is_alive": False}]
    assert common.select(rows, [("is_alive", "=", "true")], None) == [{"is_alive": True}]


def test_every_filter_must_hold():
    out = common.select(ROWS, [("state", "=", "RUNNING"), ("attempt_number", "=", 0)], None)
    assert [r["task_id"] for r in out] == ["00", "06", "0c", "12", "18"]


def test_bad_filters_name_the_problem():
    with pytest.raises(RayStateApiException, match="the columns are: a, b"):
        common.check_filters([("c", "=", 1)], ("a", "b"))
    with pytest.raises(RayStateApiException, match="bad predicate '>'"):
        common.check_filters([("a", ">", 1)], ("a",))
    with pytest.raises(RayStateApiException, match="KEY=VALUE"):
        common.parse_filter("state")
    assert common.parse_filter("state!=RUNNING") == ("state", "!=", "RUNNING")
    assert common.parse_filter(" name = a=b ") == ("name", "=", "a=b")
    assert common.check_filters(["a=1"], ("a",)) == [("a", "=", "1")]


def test_records_allow_attribute_and_item_access():
    [r] = common.select([{"state": "ALIVE"}], [], 10)
    assert r.state == r["state"] == "ALIVE" and "state" in dir(r)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        r.nope


def test_partial_reasons_warn_or_raise():
    out = common.select(ROWS, [], 2, missing=("127.0.0.1:1",))
    with pytest.raises(RayStateApiException, match="127.0.0.1:1"):
        common.report(out, True, "list_tasks")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        common.report(out, False, "list_tasks")
    texts = [str(w.message) for w in caught]
    assert any("28 more matched" in t for t in texts) and any("127.0.0.1:1" in t for t in texts)
    with pytest.raises(RayStateApiException, match="limit"):
        common.select(ROWS, [], -1)


SNAP = StateSnapshot(
    "cluster",
    nodes=(NodeRecord("n1", "127.0.0.1:6380", "host", True, True, {"CPU": 2.0}, {"CPU": 1.0}),),
    jobs=(JobRecord("j1", "ns", 42, False),),
    workers=(WorkerRecord("w1", "n1", 77, "ACTOR", None, "a1"),
             WorkerRecord("w2", "n1", 78, "DEAD", None, None)),
    actors=(ActorRecord("a1", "Counter", "c", "ns", "PENDING", None, 0, True, None),
            ActorRecord("a2", "Gone", None, "ns", "DEAD", None, 1, False, "killed")),
    tasks=(TaskRecord("t1", "f", "WAITING_FOR_ARGS", "o:1", None, 0, None),
           TaskRecord("t2", "C.m", "QUEUED", "o:1", None, 1, "a1"),
           TaskRecord("t3", "g", "FINISHED", "o:1", "w:2", 0, None)),  # as task events will add
    objects=(ObjectRecord("o1", "127.0.0.1:5", "SHARED_MEMORY", 100, 0, 0),
             ObjectRecord("o2", "127.0.0.1:5", "PENDING", None, 2, 0)))


def test_rows_use_rays_names_and_states():
    a1, a2 = schema.rows("actors", SNAP)
    assert (a1["state"], a1["pid"], a1["node_id"], a1["is_detached"]) == \
        ("PENDING_CREATION", 77, "n1", True)
    assert a2["name"] == "" and a2["pid"] is None and a2["death_cause"] == {"error_message": "killed"}
    t1, t2, t3 = schema.rows("tasks", SNAP)
    assert (t1["state"], t1["type"]) == ("PENDING_ARGS_AVAIL", "NORMAL_TASK")
    assert (t2["state"], t2["type"], t2["attempt_number"]) == \
        ("PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY", "ACTOR_TASK", 1)
    assert t3["state"] == "FINISHED"  # a later state passes through unchanged
    o1, o2 = schema.rows("objects", SNAP)
    assert (o1["object_size"], o1["task_status"], o1["reference_type"], o1["ip"]) == \
        (100, "FINISHED", "PINNED_IN_MEMORY", "127.0.0.1")
    assert (o2["object_size"], o2["task_status"], o2["reference_type"]) == \
        (-1, "PENDING", "LOCAL_REFERENCE")
    [n] = schema.rows("nodes", SNAP)
    assert (n["node_ip"], n["is_head_node"], n["state"]) == ("127.0.0.1", True, "ALIVE")
    w1, w2 = schema.rows("workers", SNAP)
    assert (w1["ip"], w1["is_alive"], w2["is_alive"]) == ("127.0.0.1", True, False)
    [j] = schema.rows("jobs", SNAP)
    assert (j["type"], j["status"], j["driver_info"]) == ("DRIVER", "FINISHED", {"pid": 42})
    assert schema.rows("placement_groups", SNAP) == []
    for kind, (brief, more) in schema.COLUMNS.items():
        for r in schema.rows(kind, SNAP):
            assert set(r) == set(brief) | set(more), kind


def test_cli_formats():
    rows = [{"a": 1, "b": None, "c": {"CPU": 2.0, "memory": 1e10}}, {"a": 22, "b": "x", "c": {}}]
    text = cli.format_rows(rows, "table", ("a", "b", "c"))
    assert text.splitlines() == ["A   B  C", "1   -  CPU: 2, memory: 10000000000", "22  x  -"]
    assert json.loads(cli.format_rows(rows, "json")) == rows
    assert cli.format_rows([], "table", ("a",)) == "A"
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install pyyaml"):
            cli.format_rows(rows, "yaml")
    else:
        assert "a: 22" in cli.format_rows(rows, "yaml")


def test_unfiltered_lists_build_only_the_rows_shown():
    assert [r["task_id"] for r in schema.rows("tasks", SNAP, 2)] == ["t1", "t2"]
    assert schema.count("tasks", SNAP) == 3 and schema.count("placement_groups", SNAP) == 0
    out = common.select(schema.rows("tasks", SNAP, 1), [], 1, total=3)
    assert len(out) == 1 and out.total == 3 and "2 more matched" in out.partial[0]


def test_log_reading_tails_then_follows_across_a_rotation(tmp_path):
    from raylite.util.state.logs import _read

    path = tmp_path / "raylite_head.log"
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    assert list(_read(str(path), 3, False, 0.001)) == ["line 7\n", "line 8\n", "line 9\n"]
    assert len(list(_read(str(path), -1, False, 0.001))) == 10
    assert list(_read(str(path), 0, False, 0.001)) == []
    follow = _read(str(path), 1, True, 0.001)
    assert next(follow) == "line 9\n"
    with open(path, "a") as f:
        f.write("new\npart")
    assert next(follow) == "new\n"
    with open(path, "a") as f:
        f.write("ial\n")
    assert next(follow) == "partial\n"
    path.rename(tmp_path / "raylite_head.log.1")  # rotated: a fresh file takes the name
    path.write_text("after rotation\n")
    assert next(follow) == "after rotation\n"
    follow.close()
