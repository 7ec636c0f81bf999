"""A driver's put waiting for spills (_runtime/spill_wait.py), without a cluster: the line
it prints from the node's record, on a terminal and off one, and the wait around it."""
import io
import threading

import pytest

from raylite._core.records import NodeRecord, SpillRecord
from raylite._runtime import spill_wait
from raylite._runtime.spill_wait import SpillWait, result_saying

MiB = 2**20
ME = "a" * 32


def _node(node_id, spill):
    return NodeRecord(node_id, "x", "h", True, True, {}, {}, spill=spill)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_line_says_how_far_this_nodes_copies_are():
    nodes = (_node("b" * 32, SpillRecord(9, 9 * MiB, 0, 0, 0, 0)),
             _node(ME, SpillRecord(4, 280 * MiB, 1, 70 * MiB, 1, 70 * MiB)))
    clock, out = Clock(), io.StringIO()
    w = SpillWait("addr", b"t", ME, 250 * MiB, 98.0, out=out, clock=clock, ask=lambda: nodes)
    w.tick()
    clock.t += 1.0
    w.tick()                   # off a terminal: not again before EVERY_S
    clock.t += spill_wait.EVERY_S
    w.tick()
    w.done()
    assert out.getvalue().splitlines() == [
        "raylite: put() of 250.0 MiB is waiting for room in the object store (2 s): spilling "
        "to disk now: 1 of 4 objects, 70.0 of 280.0 MiB copied (25 %)",
        "raylite: put() of 250.0 MiB is waiting for room in the object store (8 s): spilling "
        "to disk now: 1 of 4 objects, 70.0 of 280.0 MiB copied (25 %)"]


def test_on_a_terminal_one_line_is_redrawn_then_erased_and_a_failed_ask_is_no_error():
    def ask():
        raise ConnectionError("gone")
    out = Tty()
    w = SpillWait("addr", b"t", ME, MiB, 100.0, out=out, clock=Clock(), ask=ask)
    w.tick()
    w.tick()
    w.done()
    line = "raylite: put() of 1.0 MiB is waiting for room in the object store (0 s)"
    assert out.getvalue() == f"\r\x1b[K{line}\r\x1b[K{line}\r\x1b[K"


class Call:
    """An rpc call answered by another thread after `after` seconds (or never)."""
    def __init__(self, after=None):
        self.value, self.answered = "reply", threading.Event()
        if after is not None:
            threading.Timer(after, self.answered.set).start()

    def wait(self, timeout):
        return self.answered.wait(timeout)

    def result(self, timeout):
        if not self.answered.wait(timeout):
            raise TimeoutError("no answer")
        return self.value


class Waiter:
    def __init__(self, start):
        self.ticks, self.ended = 0, False

    def tick(self):
        self.ticks += 1

    def done(self):
        self.ended = True


def test_a_late_answer_ticks_the_waiter_and_a_prompt_one_makes_none(monkeypatch):
    monkeypatch.setattr(spill_wait, "AFTER_S", 0.05)
    monkeypatch.setattr(spill_wait, "TICK_S", 0.02)
    made = []

    def on_wait(start):
        made.append(Waiter(start))
        return made[-1]
    assert result_saying(Call(after=0.0), 5.0, on_wait) == "reply" and made == []
    assert result_saying(Call(after=0.3), 5.0, on_wait) == "reply"
    assert made[0].ticks >= 2 and made[0].ended
    with pytest.raises(TimeoutError):
        result_saying(Call(), 0.2, on_wait)
    assert made[1].ended
