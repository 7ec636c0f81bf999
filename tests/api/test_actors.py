import asyncio
import time

import pytest

from raylite.exceptions import ActorDiedError, RayActorError


def _counter(ray):
    @ray.remote
    class Counter:
        def __init__(self, start=0):
            self.n = start

        def add(self, k=1):
            self.n += k
            return self.n

        @ray.method(num_returns=2)
        def both(self):
            return self.n, -self.n

        def fail(self):
            raise RuntimeError("actor method failed")

    return Counter


def test_actor_state_and_ordering(ray):
    c = _counter(ray).remote(10)
    refs = [c.add.remote() for _ in range(50)]
    assert ray.get(refs) == list(range(11, 61))
    a, b = c.both.remote()
    assert ray.get([a, b]) == [60, -60]


def test_actor_errors_and_it_survives(ray):
    c = _counter(ray).remote()
    with pytest.raises(RuntimeError, match="actor method failed") as info:
        ray.get(c.fail.remote())
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert ray.get(c.add.remote()) == 1


def test_actor_direct_instantiation_and_call_are_type_errors(ray):
    Counter = _counter(ray)
    with pytest.raises(TypeError, match="remote"):
        Counter()
    c = Counter.remote()
    with pytest.raises(TypeError, match="remote"):
        c.add()
    with pytest.raises(AttributeError, match="no method"):
        c.nope


@pytest.mark.raylite_only("asserts raylite's message naming the class and its __init__ (Ray: 'The actor died because of an error raised in its creation task')")
def test_init_error_surfaces_on_call(ray):
    @ray.remote
    class Bad:
        def __init__(self):
            raise ValueError("bad init")

        def m(self):
            return 1

    b = Bad.remote()
    with pytest.raises(RayActorError, match=r"(?s)The actor Bad died because its __init__ raised.*bad init"):
        ray.get(b.m.remote())


@pytest.mark.raylite_only("asserts raylite's message for a taken name (Ray says 'already taken')")
def test_named_actors_and_namespaces(ray):
    Counter = _counter(ray)
    c = Counter.options(name="shared").remote(5)
    assert ray.get(ray.get_actor("shared").add.remote()) == 6
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="shared").remote()
    same = Counter.options(name="shared", get_if_exists=True).remote()
    assert ray.get(same.add.remote()) == 7
    other = Counter.options(name="shared", namespace="elsewhere").remote(100)
    assert ray.get(ray.get_actor("shared", namespace="elsewhere").add.remote()) == 101
    with pytest.raises(ValueError, match="missing"):
        ray.get_actor("missing")
    ray.kill(other)


@pytest.mark.raylite_only("asserts raylite's message for a killed actor's calls")
def test_kill(ray):
    c = _counter(ray).options(name="victim").remote()
    ray.get(c.add.remote())
    ray.kill(c)
    with pytest.raises(ActorDiedError, match=r"ray.kill\(\) was called on it"):
        ray.get(c.add.remote(), timeout=10)
    with pytest.raises(ValueError):
        ray.get_actor("victim")
    with pytest.raises(ValueError, match="actor"):
        ray.kill("not an actor")


def test_handles_pass_into_tasks_and_actors(ray):
    Counter = _counter(ray)
    c = Counter.remote()

    @ray.remote
    def bump(handle):
        return ray.get(handle.add.remote(5))

    @ray.remote
    class Proxy:
        def __init__(self, handle):
            self.h = handle

        def bump(self):
            return ray.get(self.h.add.remote(1))

    assert ray.get(bump.remote(c)) == 5
    p = Proxy.remote(c)
    assert ray.get(p.bump.remote()) == 6


def test_async_actor(ray):
    @ray.remote
    class Async:
        def __init__(self):
            self.n = 0

        async def work(self, x):
            await asyncio.sleep(0.01)
            self.n += x
            return self.n

    a = Async.remote()
    assert sorted(ray.get([a.work.remote(1) for _ in range(5)])) == [1, 2, 3, 4, 5]


def test_runtime_context(ray):
    ctx = ray.get_runtime_context()
    job = ctx.get_job_id()
    assert job and ctx.get_node_id() and ctx.namespace
    assert ctx.get_task_id() is None

    @ray.remote
    def ids():
        c = ray.get_runtime_context()
        return c.get_job_id(), c.get_task_id(), c.get_actor_id()

    j, t, a = ray.get(ids.remote())
    assert j == job and t and a is None
    assert ray.get(ids.remote())[1] != t  # each task has its own id

    @ray.remote
    class A:
        def ids(self):
            c = ray.get_runtime_context()
            return c.get_actor_id(), c.current_actor

    handle = A.remote()
    actor_id, me = ray.get(handle.ids.remote())
    assert actor_id == handle._actor_id.hex() and me == handle


def test_actor_pool(ray):
    from raylite.util import ActorPool

    @ray.remote
    class Doubler:
        def run(self, x):
            time.sleep(0.01)
            return 2 * x

    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(lambda a, v: a.run.remote(v), range(6))) == [0, 2, 4, 6, 8, 10]
    assert sorted(pool.map_unordered(lambda a, v: a.run.remote(v), range(4))) == [0, 2, 4, 6]
    pool.submit(lambda a, v: a.run.remote(v), 21)
    assert pool.has_next() and pool.get_next() == 42 and not pool.has_next()


def test_cluster_state(ray):
    total = ray.cluster_resources()
    assert total["CPU"] == 4 and total["GPU"] == 1 and total["custom"] == 2
    avail = ray.available_resources()
    assert 0 < avail.get("custom", 0) <= 2
    nodes = ray.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"] and nodes[0]["Resources"]["CPU"] == 4


def test_pending_calls_finish_when_last_handle_goes(ray):
    @ray.remote
    class Slow:
        def work(self):
            time.sleep(0.2)
            return "done"

    @ray.remote
    class SlowAsync:
        async def work(self):
            await asyncio.sleep(0.2)
            return "done"

    for cls in (Slow, SlowAsync, Slow.options(max_concurrency=4)):
        h = cls.remote()
        refs = [h.work.remote() for _ in range(3)]
        del h  # __ray_terminate__ follows the calls: a concurrent actor still ends after them
        assert ray.get(refs, timeout=10) == ["done"] * 3
        assert ray.get(cls.remote().work.remote(), timeout=10) == "done"  # a temporary handle


@pytest.mark.raylite_only("asserts raylite's one-line message for an actor that called exit_actor() (Ray's spans lines)")
def test_exit_actor_and_terminate(ray):
    @ray.remote
    class Quitter:
        def ping(self):
            return "pong"

        def quit(self):
            ray.actor.exit_actor()

    q = Quitter.remote()
    assert ray.get(q.ping.remote()) == "pong"
    for ref in (q.quit.remote(), q.ping.remote()):  # the reason, not a crash
        with pytest.raises(ActorDiedError, match=r"Quitter.*exit_actor\(\)") as info:
            ray.get(ref, timeout=10)
        assert "unexpectedly" not in str(info.value)

    t = Quitter.remote()
    assert ray.get(t.ping.remote()) == "pong"
    t.__ray_terminate__.remote()
    with pytest.raises(ActorDiedError, match="__ray_terminate__"):
        ray.get(t.ping.remote(), timeout=10)
    with pytest.raises(TypeError, match="inside an actor"):
        ray.actor.exit_actor()


def test_local_actor_ends_with_last_handle():
    import raylite

    raylite.init(local_mode=True)
    try:
        @raylite.remote
        class A:
            def ping(self):
                return 1

        a = A.remote()
        actor_id = a._actor_id
        assert raylite.get(a.ping.remote()) == 1
        del a
        assert raylite._runtime.current()._gcs.actors[actor_id].state == "DEAD"
    finally:
        raylite.shutdown()


@pytest.mark.raylite_only("a num_returns mismatch is Ray's TypeError, raylite's ValueError naming num_returns")
def test_method_options_num_returns(ray):
    c = _counter(ray).remote(3)
    a, b = c.both.remote()  # @ray.method(num_returns=2)
    assert ray.get([a, b]) == [3, -3]
    whole = c.both.options(num_returns=1).remote()
    assert ray.get(whole) == (3, -3)
    x, y, z = c.add.options(num_returns=3).remote(0)  # a mismatch fails every return
    with pytest.raises(ValueError, match="num_returns=3"):
        ray.get(z)


def test_calls_from_many_threads_run_one_at_a_time(ray):
    import threading

    @ray.remote
    class Guarded:
        def __init__(self):
            self.inside = 0
            self.most = 0

        def work(self):
            self.inside += 1
            self.most = max(self.most, self.inside)
            time.sleep(0.002)
            self.inside -= 1
            return self.most

    g = Guarded.remote()
    threads = [threading.Thread(target=lambda: ray.get([g.work.remote() for _ in range(10)]))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ray.get(g.work.remote()) == 1


def test_call_on_a_temporary_handle(ray):
    Counter = _counter(ray)
    assert ray.get(Counter.remote(41).add.remote()) == 42
    method = Counter.remote(1).add  # the method keeps its actor alive
    assert ray.get([method.remote(), method.remote()]) == [2, 3]


def test_async_actor_knows_its_id(ray):
    @ray.remote
    class Async:
        async def whoami(self):
            await asyncio.sleep(0)
            return ray.get_runtime_context().get_actor_id()

    a = Async.remote()
    assert ray.get(a.whoami.remote()) == a._actor_id.hex()


def test_actor_runtime_env_vars_reach_every_method(ray):
    import os

    @ray.remote(runtime_env={"env_vars": {"RAYLITE_ACTOR_VAR": "set"}})
    class Env:
        def __init__(self):
            self.at_init = os.environ.get("RAYLITE_ACTOR_VAR")

        def read(self):
            return self.at_init, os.environ.get("RAYLITE_ACTOR_VAR")

    assert ray.get(Env.remote().read.remote()) == ("set", "set")
    assert "RAYLITE_ACTOR_VAR" not in os.environ


@pytest.mark.raylite_only("Ray's kill is asynchronous: a call made right after kill(no_restart=False) may still reach the old instance")
def test_kill_with_restart_runs_init_again(ray):
    c = _counter(ray).options(max_restarts=1).remote(10)
    assert ray.get(c.add.remote()) == 11
    ray.kill(c, no_restart=False)
    deadline = time.monotonic() + 10
    while True:  # on a cluster the restart takes a moment
        try:
            assert ray.get(c.add.remote(), timeout=10) == 11
            break
        except RayActorError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.raylite_only("on Ray 2.60 the call after the second kill(no_restart=False) returned instead of raising RayActorError (observed)")
def test_a_named_actor_keeps_its_name_through_restarts_then_gives_it_up(ray):
    @ray.remote(max_restarts=1, name="phoenix")
    class Phoenix:
        def restarted(self):
            return ray.get_runtime_context().was_current_actor_reconstructed

    p = Phoenix.remote()
    assert ray.get(p.restarted.remote()) is False
    ray.kill(p, no_restart=False)
    deadline = time.monotonic() + 10
    while True:  # the name stays with the restarting actor
        try:
            assert ray.get(ray.get_actor("phoenix").restarted.remote(), timeout=10) is True
            break
        except RayActorError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    ray.kill(p, no_restart=False)  # no restarts left: dead for good, and its name is free
    with pytest.raises(RayActorError, match="ray.kill"):
        ray.get(p.restarted.remote(), timeout=10)
    deadline = time.monotonic() + 10
    while True:
        try:
            ray.get_actor("phoenix")
        except ValueError as e:
            assert "no live actor" in str(e)
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again = Phoenix.remote()
    assert ray.get(again.restarted.remote()) is False


def test_actor_pool_push_pop_and_empty(ray):
    from raylite.util import ActorPool

    Counter = _counter(ray)
    a, b = Counter.remote(), Counter.remote()
    pool = ActorPool([a])
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()
    pool.push(b)
    with pytest.raises(ValueError, match="already"):
        pool.push(b)
    assert pool.has_free()
    popped = pool.pop_idle()
    assert popped in (a, b)
    pool.submit(lambda actor, v: actor.add.remote(v), 5)
    assert not pool.has_free() and pool.pop_idle() is None
    pool.submit(lambda actor, v: actor.add.remote(v), 7)  # queued until an actor is free
    assert sorted([pool.get_next_unordered(), pool.get_next_unordered()]) == [5, 12]


def test_actors_an_actor_created_die_with_it(ray):
    @ray.remote(num_cpus=0)
    class Child:
        def ping(self):
            return "pong"

    @ray.remote(num_cpus=0)
    class Parent:
        def make(self, name=None):
            opts = {"lifetime": "detached", "name": name} if name else {}
            self.child = Child.options(**opts).remote()
            return self.child

    parent = Parent.remote()
    child = ray.get(parent.make.remote())
    detached = ray.get(parent.make.remote("detached-child"))
    assert ray.get(child.ping.remote(), timeout=10) == "pong"
    ray.kill(parent)
    deadline = time.monotonic() + 20
    while True:  # on a cluster the owner's death takes a moment to reach its actors
        try:
            ray.get(child.ping.remote(), timeout=10)
        except ActorDiedError as e:
            assert "owner" in str(e)
            break
        assert time.monotonic() < deadline, "the child outlived its owner"
        time.sleep(0.05)
    assert ray.get(detached.ping.remote(), timeout=10) == "pong"
    ray.kill(detached)
