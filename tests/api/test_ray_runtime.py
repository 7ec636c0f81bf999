"""The ray runtime's own points (RAYLITE_RUNTIME=ray): Ray's errors caught as raylite's,
named actors, resources and nodes, handles and refs that travel, the factory's choice.
Run on Ray only (skipped, saying why, when Ray is not installed)."""
import importlib.util
import time
import warnings

import pytest

import raylite
from raylite import exceptions

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed: pip install 'raylite[ray]'")


@pytest.fixture
def ray(request, monkeypatch):
    request.getfixturevalue("ray_instance")
    monkeypatch.setenv("RAYLITE_RUNTIME", "ray")
    raylite.init()
    assert raylite._runtime.current().name == "ray"
    yield raylite
    raylite.shutdown()


@raylite.remote
def boom(msg):
    raise ValueError(msg)


@raylite.remote
def nap(s):
    time.sleep(s)
    return s


@raylite.remote
class Counter:
    def __init__(self, n=0):
        self.n = n

    def add(self, k=1):
        self.n += k
        return self.n

    @raylite.method(num_returns=2)
    def both(self):
        return self.n, -self.n

    def whoami(self):
        return raylite.get_runtime_context().get_actor_id()


def test_a_task_error_is_raylites_and_the_users_type(ray):
    ref = boom.remote("bad input")
    with pytest.raises(exceptions.RayTaskError) as info:
        ray.get(ref)
    err = info.value
    assert isinstance(err, ValueError) and type(err).__module__ == "raylite.exceptions"
    assert err.args == ("bad input",) and isinstance(err.__cause__, ValueError)
    assert "bad input" in str(err) and "boom" in err.function_name and err.pid
    try:
        ray.get(boom.remote("again"))
    except ValueError as e:  # a plain except of the user's type catches it too
        assert "again" in str(e)


def test_get_timeout_is_raylites_and_a_timeout_error(ray):
    ref = nap.remote(3)
    with pytest.raises(exceptions.GetTimeoutError) as info:
        ray.get(ref, timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert type(info.value.__cause__).__module__.startswith("ray")  # Ray's error kept as cause
    ray.cancel(ref, force=True)


def test_a_killed_actors_calls_raise_actor_died(ray):
    c = Counter.remote()
    assert ray.get(c.add.remote()) == 1
    ray.kill(c)
    # Ray's kill is asynchronous: a call right after it may still reach the old instance,
    # so call again (up to 10 s) until one fails
    deadline = time.monotonic() + 10
    while True:
        try:
            ray.get(c.add.remote())
        except exceptions.ActorDiedError as e:
            err = e
            break
        assert time.monotonic() < deadline, "the killed actor still answered after 10 s"
        time.sleep(0.05)
    assert isinstance(err, exceptions.RayActorError) and "ray.kill" in str(err)


def test_named_actors_are_found_and_names_are_unique(ray):
    c = Counter.options(name="rt-counter").remote(5)
    assert ray.get(ray.get_actor("rt-counter").add.remote()) == 6
    with pytest.raises(ValueError):  # Ray's ActorAlreadyExistsError, also a ValueError here
        Counter.options(name="rt-counter").remote()
    with pytest.raises(ValueError):
        ray.get_actor("no-such-actor")
    a, b = ray.get_actor("rt-counter").both.remote()  # num_returns from @raylite.method
    assert ray.get([a, b]) == [6, -6]
    del c


def test_handles_and_refs_travel_into_tasks_and_back(ray):
    c = Counter.remote()

    @raylite.remote
    def use(handle, boxed):
        inner = raylite.get(boxed[0])                # a nested raylite ref, borrowed
        return raylite.get(handle.add.remote(inner)), handle, raylite.put(inner * 2)

    total, back, ref = ray.get(use.remote(c, [ray.put(10)]))
    assert total == 10 and back == c
    assert ray.get(back.add.remote()) == 11 and ray.get(ref) == 20
    assert ray.get(c.whoami.remote()) == c._actor_id.hex()


def test_resources_and_nodes_are_rays(ray):
    total = ray.cluster_resources()
    assert total["CPU"] == 4 and total["GPU"] == 1 and total["custom"] == 2
    assert set(ray.available_resources()) <= set(total)
    [node] = ray.nodes()
    assert node["Alive"] and node["alive"] and node["Resources"]["custom"] == 2
    assert ray.get_runtime_context().get_node_id() == node["NodeID"]


def test_wait_and_futures_map_back_to_raylites_refs(ray):
    fast, slow = nap.remote(0), nap.remote(3)
    ready, rest = ray.wait([slow, fast], num_returns=1, timeout=2)
    assert ready == [fast] and rest == [slow] and type(ready[0]) is raylite.ObjectRef
    with pytest.raises(ValueError):
        boom.remote("f").future().result(timeout=30)
    ray.cancel(slow, force=True)


def test_shutdown_kills_the_actors_this_driver_created(ray, ray_instance):
    c = Counter.options(name="rt-left").remote()
    ray.get(c.add.remote())
    ray.shutdown()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            ray_instance.get_actor("rt-left")
        except ValueError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the actor outlived raylite.shutdown()")


def test_an_unknown_runtime_name_lists_ray(monkeypatch):
    monkeypatch.setenv("RAYLITE_RUNTIME", "nope")
    with pytest.raises(ValueError, match="registered: cluster, local, ray"):
        raylite.init()


def test_a_joined_ray_gets_inits_runtime_env_but_its_local_dirs(request, monkeypatch, tmp_path):
    request.getfixturevalue("ray_instance")  # a Ray this program did not start
    monkeypatch.setenv("RAYLITE_RUNTIME", "ray")
    with pytest.warns(UserWarning, match=r"\['working_dir'\].*not applied"):
        raylite.init(runtime_env={"working_dir": str(tmp_path), "env_vars": {"RT_JOINED": "yes"}})
    try:
        @raylite.remote
        def env():
            import os

            return os.environ.get("RT_JOINED"), raylite.get_runtime_context().runtime_env

        assert raylite.get(env.remote()) == ("yes", {"env_vars": {"RT_JOINED": "yes"}})
    finally:
        raylite.shutdown()


def test_a_joined_ray_keeps_its_namespace_and_raylite_says_so(request, monkeypatch):
    ray = request.getfixturevalue("ray_instance")  # a Ray this program started: its job's
    job_ns = ray.get_runtime_context().namespace    # namespace cannot change
    monkeypatch.setenv("RAYLITE_RUNTIME", "ray")
    with pytest.warns(UserWarning, match=rf"namespace='team'.*{job_ns!r}.*ray.init\(\)"):
        raylite.init(namespace="team")
    try:
        @raylite.remote
        def namespaces():
            import ray

            return raylite.get_runtime_context().namespace, ray.get_runtime_context().namespace

        assert raylite.get(namespaces.remote()) == ("team", job_ns)
        assert ray.get_runtime_context().namespace == job_ns
    finally:
        raylite.shutdown()
    with warnings.catch_warnings():  # the Ray job's own namespace: nothing to say
        warnings.simplefilter("error")
        raylite.init(namespace=job_ns)
    raylite.shutdown()


def test_a_joined_ray_is_not_given_inits_setup_hook(request, monkeypatch):
    request.getfixturevalue("ray_instance")
    monkeypatch.setenv("RAYLITE_RUNTIME", "ray")
    with pytest.warns(UserWarning, match=r"\['worker_process_setup_hook'\].*not applied"):
        raylite.init(runtime_env={"worker_process_setup_hook": print, "env_vars": {"RT_H": "1"}})
    try:
        @raylite.remote
        def env():
            import os

            return os.environ.get("RT_H")

        assert raylite.get(env.remote()) == "1"  # the rest applies (Ray would refuse the hook)
    finally:
        raylite.shutdown()


def test_a_setup_hook_per_task_is_refused_or_said_not_to_run(ray):
    @ray.remote(runtime_env={"worker_process_setup_hook": print})
    def with_callable():
        return 1

    with pytest.raises(ValueError, match="init\\(\\) only.*raylite.init\\(runtime_env"):
        with_callable.remote()

    @ray.remote(runtime_env={"worker_process_setup_hook": "os.getpid"})
    def with_name():
        return 2

    with pytest.warns(UserWarning, match="'os.getpid' of a task or actor is not run"):
        assert ray.get(with_name.remote()) == 2
