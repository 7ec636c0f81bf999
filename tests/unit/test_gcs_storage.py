"""The GCS tables write through to a Storage and come back from it (storage.py, tables.py)."""
import pickle

import pytest

from raylite._gcs.storage import MemoryStorage
from raylite._gcs.tables import GcsTables
from raylite._protocol import messages as m
from raylite._runtime.base import ActorMeta


def _spec(actor_id, name=None, max_restarts=0, job=b"job1", detached=False):
    return m.ActorSpec(actor_id=actor_id, class_id=b"c" * 16, cls=b"cls", meta=ActorMeta("A", {}, False),
                       args=b"", inlined={}, owner="127.0.0.1:9", job_id=job, namespace="ns",
                       name=name, detached=detached, demand={"CPU": 1.0}, placement={"CPU": 1.0},
                       max_restarts=max_restarts, max_concurrency=None, env_vars=None,
                       max_task_retries=0)


def _view(t: GcsTables):
    """Everything the tables hold, as plain data."""
    return ({j: (x.namespace, x.pid, x.alive, x.node_id) for j, x in t.jobs.items()},
            {n: (x.address, x.resources, x.hostname, x.alive, x.is_head) for n, x in t.nodes.items()},
            {a: (e.spec, e.state, e.address, e.worker_id, e.restarts, e.death, e.reason, e.node_id,
                 e.worker_address) for a, e in t.actors.items()},
            dict(t.names), t.kv_keys(b""), [t.kv_get(k) for k in t.kv_keys(b"")])


def test_memory_storage_tables_of_bytes():
    s = MemoryStorage()
    assert s.get("t", b"k") is None and s.scan("t") == [] and not s.delete("t", b"k")
    s.put("t", b"k2", b"v2")
    s.put("t", b"k1", b"v1")
    s.put("t", b"k2", b"v2'")                  # replaced in place: scan keeps the first order
    s.put("u", b"k1", b"other table")
    assert s.scan("t") == [(b"k2", b"v2'"), (b"k1", b"v1")] and s.scan("t", b"k1") == [(b"k1", b"v1")]
    assert s.delete("t", b"k2") and s.get("t", b"k2") is None and s.get("u", b"k1") == b"other table"
    with pytest.raises(TypeError, match="bytes"):
        s.put("t", "text", b"v")
    assert s.statistics()["records"] == {"t": 1, "u": 1}


def test_every_change_is_written_through_and_the_tables_rebuild_from_storage():
    storage = MemoryStorage()
    t = GcsTables(storage)
    assert t.persist
    t.add_node(b"n" * 16, "10.0.0.1:1", {"CPU": 2.0}, "head", is_head=True)
    t.add_node(b"m" * 16, "10.0.0.2:1", {"CPU": 1.0}, "other")
    t.remove_node(b"m" * 16)
    t.add_job(b"job1", "ns", 123, b"n" * 16)
    t.add_job(b"job2", "ns", 124)
    t.finish_job(b"job2")
    t.register_actor(_spec(b"a" * 16, name="named", max_restarts=1), False)
    t.register_actor(_spec(b"b" * 16, name="gone"), False)
    t.register_actor(_spec(b"c" * 16), False)
    assert t.actor_placed(b"a" * 16, 0, b"n" * 16, b"w" * 16, "10.0.0.1:5")
    t.actor_started(b"a" * 16, b"w" * 16, "10.0.0.1:5", 0)
    assert t.actor_died(b"a" * 16, pickle.dumps("crash"), True, reason="it crashed") == "RESTARTING"
    t.actor_died(b"b" * 16, b"why", may_restart=False)
    t.kv_put(b"fn:1", b"body")
    assert not t.kv_put(b"fn:1", b"other", overwrite=False)
    t.kv_put(b"tmp", b"x")
    t.kv_delete(b"tmp")

    again = GcsTables.load(storage)
    assert _view(again) == _view(t)
    assert again.names == {("ns", "named"): b"a" * 16}      # the dead actor's name is free
    assert again.lookup(None, "named", "ns").restarts == 1
    again.register_actor(_spec(b"d" * 16, name="gone"), False)  # and it keeps writing through
    assert _view(GcsTables.load(storage)) == _view(again)


def test_tables_without_a_storage_write_nothing_but_keep_their_kv():
    t = GcsTables()                                      # local mode: deaths are exceptions
    t.register_actor(_spec(b"a" * 16), False)
    t.actor_died(b"a" * 16, ValueError(lambda: None), may_restart=False)  # not picklable
    t.kv_put(b"k", b"v")
    assert not t.persist and t.storage.scan("actors") == [] and t.kv_get(b"k") == b"v"


def test_stale_incarnations_change_nothing():
    t = GcsTables()
    t.register_actor(_spec(b"a" * 16, max_restarts=1), False)
    assert t.actor_placed(b"a" * 16, 0, b"n" * 16, b"w1" * 8, "h:1")
    t.actor_died(b"a" * 16, b"crash", may_restart=True)
    assert not t.actor_placed(b"a" * 16, 0, b"n" * 16, b"w1" * 8, "h:1")   # the first placement's
    assert not t.actor_started(b"a" * 16, b"w1" * 8, "h:1", 0)            # report comes late
    assert t.actors[b"a" * 16].state == "RESTARTING" and t.actors[b"a" * 16].worker_id is None
    assert t.actor_placed(b"a" * 16, 1, b"n" * 16, b"w2" * 8, "h:2")
    assert t.actor_on_worker(b"w2" * 8) == b"a" * 16                         # even mid-__init__
    assert t.actor_started(b"a" * 16, b"w2" * 8, "h:2", 1)
    assert t.actors_on_node(b"n" * 16) == [b"a" * 16]


def test_an_actor_id_is_registered_once():
    t = GcsTables()
    t.register_actor(_spec(b"a" * 16), False)
    assert t.register_actor(_spec(b"a" * 16, name="x"), False)[2].startswith("An actor with the id")
    assert t.names == {}


def test_the_tables_keep_a_bounded_log_of_recent_events():
    t = GcsTables()
    for i in range(400):
        t.add_job(i.to_bytes(4, "big"), "ns", 1)
    assert len(t.log) == 256 and t.log[-1] == ("job", (399).to_bytes(4, "big"), "ns")
