"""get_log(task_id=...) of a call of an actor that runs several calls at once (a threaded
actor, max_concurrency > 1, or an async actor) gives that call's lines only, though the calls
print into one worker file at the same time: each write is attributed to the call whose
thread or asyncio task made it (_worker/output.py). The calls below take turns (a barrier,
or a turn counter), so their lines interleave in the file for certain; every wait is
bounded. The worker's events and its pipe reader reach the store and the file a moment
later, so the tests wait (bounded) for them."""
import pytest

from raylite.util import state

from test_task_events import until

pytestmark = [pytest.mark.raylite_only("raylite's own worker log files"),
              pytest.mark.cluster_only("worker log files: local mode prints in the driver")]


def _log(task_id: str, suffix: str = "out") -> list:
    try:
        return list(state.get_log(task_id=task_id, suffix=suffix, tail=-1))
    except state.RayStateApiException:  # its record has no worker yet, or no file yet
        return []


def _file_of(actor) -> str:
    return "".join(state.get_log(actor_id=actor._actor_id.hex(), tail=-1))


def test_calls_of_a_threaded_actor_each_find_only_their_own_lines(ray):
    @ray.remote(max_concurrency=2)
    class Talker:
        def __init__(self):
            import threading

            self.step = threading.Barrier(2, timeout=30)

        def talk(self, tag):
            import sys

            for i in range(3):
                self.step.wait()  # both calls are at step i: their lines alternate
                print(f"{tag}-line-{i}")
                self.step.wait()
            print(f"{tag}-half", end="")  # a line whose end comes after the other's lines
            self.step.wait()
            print(f"{tag}-err", file=sys.stderr)
            self.step.wait()
            print(f"-{tag}-rest")
            return ray.get_runtime_context().get_task_id()

    t = Talker.remote()
    ids = ray.get([t.talk.remote("alpha"), t.talk.remote("beta")], timeout=60)
    for tid, tag in zip(ids, ("alpha", "beta")):
        want = [f"{tag}-line-{i}\n" for i in range(3)] + [f"{tag}-half-{tag}-rest\n"]
        assert until(lambda: _log(tid), lambda got: got == want) == want
        assert _log(tid, "err") == [f"{tag}-err\n"]
    whole = until(lambda: _file_of(t), lambda text: text.count("-rest") == 2)
    firsts = [whole.index(f"{tag}-line-0") for tag in ("alpha", "beta")]
    assert max(firsts) < min(whole.index(f"{tag}-line-2") for tag in ("alpha", "beta"))
    assert ":raylite_task_" not in whole  # a whole file's reader sees no marker


def test_calls_of_an_async_actor_each_find_only_their_own_lines(ray):
    @ray.remote
    class AsyncTalker:
        def __init__(self):
            self.turn = 0

        async def _my_turn(self, parity):
            import asyncio
            import time

            deadline = time.monotonic() + 30
            while self.turn % 2 != parity:
                assert time.monotonic() < deadline, "the other call never took its turn"
                await asyncio.sleep(0.001)

        async def _sub(self, tag):
            print(f"{tag}-from-a-sub-task")  # a task the call made: its context is the call's

        async def talk(self, tag, parity):
            import asyncio

            for i in range(3):
                await self._my_turn(parity)
                print(f"{tag}-line-{i}")
                if i == 1:
                    await asyncio.gather(self._sub(tag))
                self.turn += 1
            return ray.get_runtime_context().get_task_id()

    t = AsyncTalker.remote()
    ids = ray.get([t.talk.remote("alpha", 0), t.talk.remote("beta", 1)], timeout=60)
    for tid, tag in zip(ids, ("alpha", "beta")):
        want = [f"{tag}-line-0\n", f"{tag}-line-1\n", f"{tag}-from-a-sub-task\n",
                f"{tag}-line-2\n"]
        assert until(lambda: _log(tid), lambda got: got == want) == want
    whole = until(lambda: _file_of(t), lambda text: text.count("-line-2") == 2)
    assert whole.index("beta-line-0") < whole.index("alpha-line-1")  # they took turns


def test_a_sequential_actor_and_the_creation_are_marked_as_before(ray):
    @ray.remote
    class Plain:
        def __init__(self):
            print("made")

        def say(self, word):
            print(word)
            return ray.get_runtime_context().get_task_id()

    p = Plain.remote()
    first, second = ray.get([p.say.remote("one"), p.say.remote("two")], timeout=60)
    assert until(lambda: _log(first), lambda got: got == ["one\n"]) == ["one\n"]
    assert until(lambda: _log(second), lambda got: got == ["two\n"]) == ["two\n"]
    made = p._actor_id.hex()
    assert until(lambda: _log(made), lambda got: got == ["made\n"]) == ["made\n"]
