"""What only local mode promises: everything runs in the caller's process and thread."""
import threading
import traceback

import pytest

from raylite.exceptions import ActorUnschedulableError, RayTaskError, TaskUnschedulableError


@pytest.fixture
def local():
    import raylite

    raylite.init(local_mode=True, num_cpus=2)
    yield raylite
    raylite.shutdown()


def test_task_runs_on_the_callers_thread_inside_its_stack(local):
    @local.remote
    def where():
        return threading.get_ident(), [f.name for f in traceback.extract_stack()]

    ident, stack = local.get(where.remote())
    assert ident == threading.get_ident()
    assert "test_task_runs_on_the_callers_thread_inside_its_stack" in stack


def test_actor_method_runs_on_the_callers_thread(local):
    @local.remote
    class A:
        def where(self):
            return threading.get_ident()

    assert local.get(A.remote().where.remote()) == threading.get_ident()


def test_unschedulable_work_raises_at_once(local):
    with pytest.raises(TaskUnschedulableError, match="CPU: 3 \\(node has 2\\)"):
        local.remote(num_cpus=3)(lambda: 1).remote()
    with pytest.raises(TaskUnschedulableError, match="GPU"):
        local.remote(num_gpus=1)(lambda: 1).remote()

    @local.remote(num_cpus=2)
    class Big:
        pass

    with pytest.raises(ActorUnschedulableError, match="CPU"):
        Big.options(num_cpus=5).remote()
    held = Big.remote()  # holds both CPUs while alive
    with pytest.raises(ActorUnschedulableError, match="wait forever"):
        Big.remote()
    local.kill(held)
    Big.remote()  # the CPUs came back


def test_async_actor_calling_itself_is_a_clear_error_not_a_hang(local):
    @local.remote
    class Loop:
        async def inner(self):
            return 1

        async def outer(self):
            me = local.get_runtime_context().current_actor
            return await me.inner.remote()

    with pytest.raises(RayTaskError, match="would wait forever"):
        local.get(Loop.remote().outer.remote(), timeout=10)
