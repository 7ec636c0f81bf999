"""validate.py: every field of every message the daemon handles is checked, and a refusal
names the field, what it must be and what it was; ratelog.py bounds the lines refusals log."""
import logging
import math

import pytest

from raylite._core import records as rec
from raylite._node.server import _HANDLERS
from raylite._protocol import messages as m
from raylite._protocol import validate
from raylite._protocol.ratelog import RateLimitedLog
from raylite._runtime.base import ActorMeta

ID = bytes(16)


def test_every_message_the_daemon_handles_has_a_check_for_every_field():
    for cls in _HANDLERS:
        assert cls in validate.SPECS, cls.__name__
    for cls, spec in validate.SPECS.items():
        assert list(spec) == list(cls._fields), cls.__name__


@pytest.mark.parametrize("msg", [
    m.RegisterClient(1, "driver", 12, "127.0.0.1:5", None, None, None, {"A": "b"}),
    m.RegisterClient(0, "worker", 12, "[::1]:5", "ns", b"job1", ID),
    m.RegisterNode(1, ID, "10.0.0.2:6379", {"CPU": 4.0, "GPU": 1, "node:10.0.0.2": 1.0}, "box"),
    m.RequestLease(5, {}, "f"),
    m.AllocObject(3, ID, 0, "127.0.0.1:5"),
    m.FreeObjects([ID, ID], (ID,)),
    m.PullObject(1, ID, 2**30, "127.0.0.1:5", "127.0.0.1:6"),
    m.PullObject(1, ID, 1, "", "127.0.0.1:6"),          # an argument blob: owner unknown
    m.ReadObject(2, ID, 5),
    m.DropCopies("127.0.0.1:6", (ID,)),
    m.LogLines(b"job1", "(f pid=3)", ["a", "b"], True),
    m.CreateActor(1, m.ActorSpec(ID, ID, b"c", ActorMeta("A", {"f": None}, False), object(), {ID: 1},
                                 "127.0.0.1:5", b"job1", "ns", "name", True, {"CPU": 0.5}, {"CPU": 1},
                                 -1, 4, None, -1, {"io": 2}, ("/x",)), True),
    m.GetState(1),
    m.GetState(2, ("nodes",), False),
    m.StateReply(1, rec.StateSnapshot("owner 127.0.0.1:5", tasks=(
        rec.TaskRecord("ab", "f", "RUNNING", "127.0.0.1:5", "127.0.0.1:6", 0, None),), objects=(
        rec.ObjectRecord("cd", "127.0.0.1:5", "INLINE", 3, 1, 0),)), ()),
])
def test_good_messages_pass(msg):
    assert validate.problem(msg) is None


@pytest.mark.parametrize("msg, says", [
    (m.RegisterNode(1, ID, "127.0.0.1:5", {"CPU": "lots"}, "h"),
     "RegisterNode.resources['CPU'] must be a finite number from 0 to 1e+18, not str 'lots'"),
    (m.AllocObject(1, ID, math.nan, "127.0.0.1:5"), "AllocObject.size must be an integer"),
    (m.AllocObject(1, ID, True, "127.0.0.1:5"), "not bool True"),
    (m.RequestLease(1, {"CPU": -1.0}, "f"), "RequestLease.demand['CPU'] must be a finite number"),
    (m.RequestLease(1, {"": 1.0}, "f"), "RequestLease.demand key must be a non-empty string"),
    (m.FreeObjects((ID, b"abc")), "FreeObjects.object_ids[1] must be a 16-byte id, not bytes b'abc'"),
    (m.PullObject(1, ID, 0, "", "127.0.0.1:6"), "PullObject.size must be an integer from 1"),
    (m.PullObject(1, ID, 5, "", "nowhere"), "PullObject.source must be a \"host:port\""),
    (m.PullObject(1, ID, 5, None, "127.0.0.1:6"), "PullObject.owner must be a \"host:port\""),
    (m.ReadObject(1, b"short", 5), "ReadObject.object_id must be a 16-byte id"),
    (m.ReadObject(1, ID, -5), "ReadObject.size must be an integer from 1"),
    (m.DropCopies("127.0.0.1:6", ID), "DropCopies.object_ids must be a tuple or list"),
    (m.RegisterWorker(ID, 0, "127.0.0.1:5"), "RegisterWorker.pid must be an integer from 1"),
    (m.RegisterClient(1, "admin", 1, "127.0.0.1:5", None, None, None), "RegisterClient.kind must be one of"),
    (m.RegisterClient(1, "driver", 1, "127.0.0.1:70000", None, None, None), "must be a \"host:port\""),
    (m.RegisterClient(1, "driver", 1, "127.0.0.1:²", None, None, None), "must be a \"host:port\""),
    (m.CreateActor(1, m.ActorSpec(ID, ID, b"c", None, b"", {}, "127.0.0.1:5", b"job1", "ns", None,
                                  False, {}, {}, 0, None, None, 0), False),
     "CreateActor.spec: ActorSpec.meta.class_name must be a string"),
    (m.CreateActor(1, {"actor_id": ID}, False), "CreateActor.spec must be a ActorSpec, not dict"),
    (tuple.__new__(m.RegisterNode, (1, ID)), "RegisterNode has 2 fields, not 6"),
    (m.GetState(1, ("nodes", "secrets")), "GetState.kinds[1] must be one of"),
    (m.GetState(1, ["nodes"]), "GetState.kinds must be a tuple"),
    (m.StateReply(1, {"tasks": ()}), "StateReply.snapshot must be a StateSnapshot, not dict"),
    (m.StateReply(1, rec.StateSnapshot("x", objects=[])), "StateReply.snapshot.objects must be a tuple"),
    (m.StateReply(1, rec.StateSnapshot("x", objects=(rec.TaskRecord(*"abcdefg"),))),
     "StateReply.snapshot.objects[0] must be a ObjectRecord with a string id, not TaskRecord"),
    (m.StateReply(1, rec.StateSnapshot("x", tasks=(rec.TaskRecord(b"id", *"bcdefg"),))),
     "StateReply.snapshot.tasks[0] must be a TaskRecord with a string id"),
    (m.StateReply(1, rec.StateSnapshot("x", tasks=(tuple.__new__(rec.TaskRecord, ("id",)),))),
     "StateReply.snapshot.tasks[0] must be a TaskRecord"),
    (m.StateReply(1, rec.StateSnapshot("x"), ["127.0.0.1:5"]), "StateReply.missing must be a tuple"),
])
def test_a_bad_field_is_named_with_what_it_must_be(msg, says):
    assert says in validate.problem(msg)


def test_types_it_does_not_know_are_left_to_the_caller():
    assert validate.problem(m.TaskDone(ID, (), None, False)) is None
    assert validate.problem(42) is None


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limited_log_writes_once_per_key_and_a_burst_in_all(caplog):
    clock = _Clock()
    rl = RateLimitedLog(logging.getLogger("raylite.test"), interval=60, burst=3, clock=clock)
    with caplog.at_level(logging.WARNING, "raylite.test"):
        assert rl.warning("a", "from %s", "a")
        assert not rl.warning("a", "from %s", "a")      # same key, same minute
        assert rl.warning("b", "from %s", "b")
        assert rl.warning("c", "from %s", "c")
        assert not rl.warning("d", "from %s", "d")      # the burst is spent
        clock.now += 61
        assert rl.warning("a", "from %s", "a")          # a new minute
    held = " similar warning held back; at most one per peer and 3 in all every 60 s)"
    assert [r.getMessage() for r in caplog.records] == ["from a", "from b (1" + held, "from c",
                                                        "from a (1" + held]
    assert rl.held_back == 0
