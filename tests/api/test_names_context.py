"""Ray's names a program touches, on every runtime: RuntimeContext, ObjectRef's methods,
Ray's id classes, actors' built-in methods, RAY_NAMESPACE."""
import asyncio
import os
import time

import pytest

import raylite
from raylite import JobID, NodeID, ObjectRef, TaskID


@pytest.mark.raylite_only("raylite's task function name is module.qualname; Ray 2.60 gives module.name for a nested function")
def test_task_names_and_function_names(ray):
    @ray.remote
    def whoami():
        c = ray.get_runtime_context()
        return c.get_task_name(), c.get_task_function_name()

    assert ray.get(whoami.remote()) == ("whoami", f"{__name__}.test_task_names_and_function_names"
                                        ".<locals>.whoami")
    assert ray.get(whoami.options(name="custom").remote())[0] == "custom"

    @ray.remote
    class Greeter:
        def __init__(self):
            c = ray.get_runtime_context()
            self.init_names = (c.get_task_name(), c.get_task_function_name())

        def names(self):
            c = ray.get_runtime_context()
            return self.init_names, (c.get_task_name(), c.get_task_function_name())

    g = Greeter.remote()
    init_names, names = ray.get(g.names.remote())
    assert init_names[0] == "Greeter.__init__" and init_names[1].endswith("<locals>.Greeter.__init__")
    assert names[0] == "Greeter.names" and names[1].startswith(__name__ + ".")
    assert names[1].endswith(".<locals>.Greeter.names")
    ctx = ray.get_runtime_context()
    assert ctx.get_task_name() is None and ctx.get_task_function_name() is None


def test_each_actor_call_has_its_own_task_id(ray):
    @ray.remote
    class Plain:
        def tid(self):
            return ray.get_runtime_context().get_task_id()

    @ray.remote(max_concurrency=4)
    class Threaded:
        def tid(self):
            time.sleep(0.01)
            return ray.get_runtime_context().get_task_id()

    @ray.remote
    class Async:
        async def tid(self):
            first = ray.get_runtime_context().get_task_id()
            await asyncio.sleep(0.01)  # other calls run meanwhile on the same loop thread
            return first, ray.get_runtime_context().get_task_id()

    for cls in (Plain, Threaded):
        a = cls.remote()
        ids = ray.get([a.tid.remote() for _ in range(6)])
        assert all(ids) and len(set(ids)) == 6, cls
    b = Async.remote()
    pairs = ray.get([b.tid.remote() for _ in range(6)])
    assert all(first == last and first for first, last in pairs)
    assert len({first for first, _ in pairs}) == 6


def test_typed_ids_and_old_properties(ray):
    ctx = ray.get_runtime_context()
    assert ctx.job_id == JobID.from_hex(ctx.get_job_id()) and isinstance(ctx.job_id, JobID)
    assert ctx.node_id == NodeID(bytes.fromhex(ctx.get_node_id()))
    assert ctx.task_id is None and ctx.actor_id is None
    assert str(ctx.job_id) == f"JobID({ctx.get_job_id()})"

    @ray.remote
    class A:
        def ids(self):
            c = ray.get_runtime_context()
            return c.task_id, c.actor_id, c.get_task_id(), c.get_actor_id()

    a = A.remote()
    task_id, actor_id, task_hex, actor_hex = ray.get(a.ids.remote())
    assert isinstance(task_id, TaskID) and task_id.hex() == task_hex
    assert actor_id.hex() == actor_hex and not actor_id.is_nil()
    assert JobID.nil().is_nil() and JobID.nil() != TaskID.nil()
    assert raylite.ObjectID is ObjectRef


def test_cluster_facts(ray):
    ctx = ray.get_runtime_context()
    assert ctx.get_placement_group_id() is None and ctx.current_placement_group_id is None
    assert ctx.gcs_address == raylite._runtime.current().info().address
    assert ctx.get_session_name() and os.path.isabs(ctx.get_temp_dir())
    with pytest.warns(DeprecationWarning):
        assert ctx.get_resource_ids() == ctx.get_accelerator_ids()

    @ray.remote(num_gpus=1)
    def gpus():
        c = ray.get_runtime_context()
        return c.get_accelerator_ids(), c.get_session_name(), c.get_temp_dir()

    accel, session, temp = ray.get(gpus.remote())
    assert accel == {"GPU": ["0"]} and (session, temp) == (ctx.get_session_name(), ctx.get_temp_dir())


def test_runtime_env_in_driver_tasks_and_actors(runtime_kwargs, tmp_path):
    raylite.init(runtime_env={"env_vars": {"JOB": "j"}}, **runtime_kwargs)
    ctx = raylite.get_runtime_context()
    assert ctx.runtime_env == {"env_vars": {"JOB": "j"}}
    assert '"JOB": "j"' in ctx.get_runtime_env_string()

    @raylite.remote
    def env():
        return raylite.get_runtime_context().runtime_env

    @raylite.remote(runtime_env={"env_vars": {"MINE": "a"}})
    class A:
        def env(self):
            return raylite.get_runtime_context().runtime_env

    assert raylite.get(env.remote()) == {"env_vars": {"JOB": "j"}}
    task_env = env.options(runtime_env={"env_vars": {"T": "1"}}).remote()
    assert raylite.get(task_env) == {"env_vars": {"JOB": "j", "T": "1"}}
    a = A.remote()
    assert raylite.get(a.env.remote()) == {"env_vars": {"JOB": "j", "MINE": "a"}}


def test_runtime_env_in_tasks_is_the_whole_env_as_given(runtime_kwargs):
    config = {"setup_timeout_seconds": 60}
    raylite.init(runtime_env={"env_vars": {"JOB": "j"}, "config": config}, **runtime_kwargs)

    @raylite.remote
    def env():
        return raylite.get_runtime_context().runtime_env

    @raylite.remote
    class A:
        def env(self):
            return raylite.get_runtime_context().runtime_env

    own = {"env_vars": {"T": "1"}, "config": {"setup_timeout_seconds": 30}}
    assert raylite.get(env.remote()) == {"env_vars": {"JOB": "j"}, "config": config}
    assert raylite.get(env.options(runtime_env=own).remote()) == {
        "env_vars": {"JOB": "j", "T": "1"}, "config": {"setup_timeout_seconds": 30}}
    a = A.options(runtime_env={"env_vars": {"MINE": "a"}}).remote()
    assert raylite.get(a.env.remote()) == {"env_vars": {"JOB": "j", "MINE": "a"}, "config": config}

    @raylite.remote
    def set_here():  # what is reported is what is applied (on a Ray that was started
        return os.environ.get("JOB"), os.environ.get("T")  # without it, too)

    assert raylite.get(set_here.remote()) == ("j", None)
    assert raylite.get(set_here.options(runtime_env=own).remote()) == ("j", "1")


@pytest.mark.raylite_only("Ray takes a local working_dir or py_modules only in ray.init(), and "
                          "this tier joins one shared Ray")
def test_runtime_env_names_working_dir_and_py_modules_as_given(runtime_kwargs, tmp_path):
    work, mods = tmp_path / "work", tmp_path / "mods" / "rl_ctx_mod"
    work.mkdir()
    mods.mkdir(parents=True)
    (mods / "__init__.py").write_text("X = 1\n")
    raylite.init(**runtime_kwargs)

    @raylite.remote
    def env():
        return raylite.get_runtime_context().runtime_env

    own = {"working_dir": str(work), "py_modules": [str(mods)], "env_vars": {"T": "1"}}
    assert raylite.get(env.options(runtime_env=own).remote()) == own

def test_is_canceled(ray):
    with pytest.raises(RuntimeError, match="driver"):
        ray.get_runtime_context().is_canceled()

    @ray.remote
    def check():
        return ray.get_runtime_context().is_canceled()

    @ray.remote
    class Async:
        async def check(self):
            ray.get_runtime_context().is_canceled()

    assert ray.get(check.remote()) is False
    a = Async.remote()  # held: a call on a dropped async actor's handle may race its end
    with pytest.raises(RuntimeError, match="async actors"):
        ray.get(a.check.remote())


@pytest.mark.raylite_only("on Ray 2.60 is_canceled() stayed False for 10 s after ray.cancel() of a running sync actor call (observed)")
@pytest.mark.cluster_only("cancel() must arrive while the actor call runs")
def test_a_running_actor_call_sees_its_cancel(ray):
    @ray.remote
    class Worker:
        def work(self):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if ray.get_runtime_context().is_canceled():
                    return "stopped early"
                time.sleep(0.01)
            return "ran to the end"

    w = Worker.remote()
    ray.get(w.__ray_ready__.remote())
    ref = w.work.remote()
    time.sleep(0.3)
    ray.cancel(ref)
    assert ray.get(ref, timeout=10) == "stopped early"


def test_object_ref_methods(ray):
    ref = ray.put(5)
    assert ref.job_id() == ray.get_runtime_context().job_id
    assert ref.call_site() == "" and not ref.is_nil() and ref.size() == len(ref.binary())
    assert ObjectRef.nil().is_nil() and ObjectRef.nil() == ObjectRef.nil()
    assert ObjectRef.from_hex(ref.hex()) == ref and ObjectRef.from_binary(ref.binary()) == ref
    assert ObjectRef.from_random() != ObjectRef.from_random()
    with pytest.raises(TypeError):
        ObjectRef.from_binary(ref.hex())

    async def main():
        return await ref.as_future()

    assert asyncio.run(main()) == 5


def test_a_refs_task_id_is_the_task_that_made_it(ray):
    @ray.remote
    def me():
        return ray.get_runtime_context().get_task_id()

    ref = me.remote()
    assert isinstance(ref.task_id(), TaskID) and ref.task_id().hex() == ray.get(ref)
    two = ray.remote(num_returns=2)(lambda: (1, 2)).remote()
    assert two[0].task_id() == two[1].task_id() != ref.task_id()


@pytest.mark.raylite_only("Ray 2.60's __ray_call__ on an async actor returns the coroutine unawaited (cannot pickle 'coroutine' object); raylite awaits it")
def test_actor_builtin_methods(ray):
    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 41

    @ray.remote
    class AsyncCounter:
        def __init__(self):
            self.n = 1

        async def nothing(self):
            pass

    c = Counter.remote()
    assert ray.get(c.__ray_ready__.remote()) is True
    assert ray.get(c.__ray_call__.remote(lambda self, k: self.n + k, 1)) == 42

    async def bump(self, by):
        await asyncio.sleep(0)
        self.n += by
        return self.n

    a = AsyncCounter.remote()
    assert ray.get(a.__ray_ready__.remote()) is True
    assert ray.get(a.__ray_call__.remote(bump, by=2)) == 3


def test_ray_namespace_is_read_when_raylites_is_unset(runtime_kwargs, monkeypatch):
    monkeypatch.setenv("RAY_NAMESPACE", "from-ray")
    raylite.init(**runtime_kwargs)
    assert raylite.get_runtime_context().namespace == "from-ray"
    raylite.shutdown()
    monkeypatch.setenv("RAYLITE_NAMESPACE", "from-raylite")
    raylite.init(**runtime_kwargs)
    assert raylite.get_runtime_context().namespace == "from-raylite"
    raylite.shutdown()
    raylite.init(namespace="given", **runtime_kwargs)
    assert raylite.get_runtime_context().namespace == "given"


def test_node_labels(ray):
    ctx = ray.get_runtime_context()
    labels = ctx.get_node_labels()
    assert isinstance(labels, dict) and all(isinstance(k, str) for k in labels)
    mine = next(n for n in ray.nodes() if n["NodeID"] == ctx.get_node_id())
    assert labels == mine["Labels"] and labels["ray.io/node-id"] == ctx.get_node_id()

    @ray.remote
    def in_task():
        return ray.get_runtime_context().get_node_labels()

    assert ray.get(in_task.remote()) == labels  # one node: the same labels
