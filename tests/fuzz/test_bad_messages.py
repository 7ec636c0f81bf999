"""Issue 11, item 8: a token holder's malformed but well-typed message changes nothing.

Each case once, by hand (test_wire_fuzz.py generates many more): the daemon refuses the
message before any handler runs, keeps answering, and its state stays as it was.
"""
import os
import socket
import time

import psutil
import pytest

from raylite._core import records as rec
from raylite._protocol import messages as m

ID = os.urandom(16)


class _Short:
    """Unpickles as a RegisterNode with two of its five fields (tuple.__new__ skips the class's
    own constructor, which would refuse)."""

    def __reduce__(self):
        return tuple.__new__, (m.RegisterNode, (7, ID))


BAD = {
    # one of these broke `raylite status` and nodes() for good: summing "lots" into the totals
    "register_node": m.RegisterNode(7, ID, "127.0.0.1:1", {"CPU": "lots"}, "evil"),
    # ... and this made the store's accounting nan
    "nan_size": m.AllocObject(7, ID, float("nan"), "127.0.0.1:1"),
    "negative_size": m.AllocObject(7, ID, -2**40, "127.0.0.1:1"),
    "infinite_demand": m.RequestLease(7, {"CPU": float("inf")}, "f"),
    "short_id": m.FreeObjects((b"abc",)),
    "pid_zero": m.RegisterWorker(ID, 0, "127.0.0.1:1"),
    "not_an_address": m.RegisterClient(7, "driver", 1, "nowhere", None, None, None),
    "two_of_five_fields": _Short(),
    "not_handled_here": m.TaskDone(ID, (), None, False),
    # an owner's answer nobody asked for (well formed: handled, and ignored) ...
    "unasked_state_reply": m.StateReply(7, rec.StateSnapshot("owner 127.0.0.1:1", tasks=(
        rec.TaskRecord("ab", "f", "RUNNING", "127.0.0.1:1", None, 0, None),))),
    # ... and one whose records are not records
    "state_reply_of_dicts": m.StateReply(7, rec.StateSnapshot("x", objects=({"object_id": "ab"},))),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_message_is_refused_and_changes_nothing(head, name):
    before = head.settled()
    conn = head.connect()
    try:
        conn.send(BAD[name])
        conn.send(m.GetState(8))  # answered after the bad one: the daemon reads in order
        reply = conn.recv()
    finally:
        conn.close()
    assert type(reply) is m.StateReply and reply.req == 8, reply
    assert tuple(reply[1:]) == before
    assert head.state() == before and head.alive()


@pytest.mark.parametrize("length", [2**30, 2**32 - 1])
def test_a_huge_length_prefix_closes_that_connection_and_reserves_nothing(head, length):
    before = head.settled()
    daemon = psutil.Process(head.pid)
    vms = daemon.memory_info().vms
    conn = head.connect()
    try:
        conn.sock.sendall(length.to_bytes(4, "big") + b"\x80\x05")  # and never the rest
        assert conn.sock.recv(1) == b"", "the daemon kept the connection"
    except socket.timeout:
        pytest.fail("the daemon waited for the body of a frame over its limit")
    finally:
        conn.close()
    time.sleep(0.1)
    assert daemon.memory_info().vms - vms < 2**28, "the daemon reserved memory for the frame"
    assert head.state() == before and head.alive()
