import pickle

import pytest

from raylite.exceptions import RayTaskError, TaskUnschedulableError


def test_remote_function_returns_refs(ray):
    @ray.remote
    def add(a, b=10):
        return a + b

    ref = add.remote(1)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 11
    assert ray.get(add.remote(1, b=2)) == 3
    assert ray.get([add.remote(i, b=0) for i in range(5)]) == [0, 1, 2, 3, 4]


def test_decorator_with_options_and_options_method(ray):
    @ray.remote(num_cpus=2, num_returns=2)
    def pair():
        return 1, 2

    a, b = pair.remote()
    assert ray.get([a, b]) == [1, 2]
    one = pair.options(num_returns=1).remote()
    assert ray.get(one) == (1, 2)
    assert pair.options(num_returns=0).remote() is None


def test_num_returns_mismatch_is_an_error(ray):
    @ray.remote(num_returns=3)
    def two():
        return 1, 2

    refs = two.remote()
    with pytest.raises(ValueError, match="num_returns=3"):
        ray.get(refs[0])


def test_calling_remote_function_directly_is_type_error(ray):
    @ray.remote
    def f():
        return 1

    with pytest.raises(TypeError, match=r"f\.remote\(\)"):
        f()


def test_bad_option_lists_valid_ones(ray):
    with pytest.raises(ValueError, match="num_cpus"):
        ray.remote(num_cpu=1)(lambda: 1)

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="max_retries"):
        f.options(max_retries="x")
    with pytest.raises(ValueError, match="num_gpus"):
        f.options(resources={"GPU": 1})


def test_top_level_refs_resolved_nested_refs_stay_refs(ray):
    @ray.remote
    def inspect(x, nested, **kw):
        return (x, type(nested["r"]).__name__, ray.get(nested["r"]),
                type(kw["k"]).__name__, type(nested["l"][0]).__name__)

    r = ray.put(5)
    assert ray.get(inspect.remote(r, {"r": r, "l": [r]}, k=r)) == (5, "ObjectRef", 5, "int",
                                                                   "ObjectRef")


def test_arguments_are_copied(ray):
    @ray.remote
    def mutate(lst):
        lst.append(99)
        return lst

    data = [1]
    assert ray.get(mutate.remote(data)) == [1, 99]
    assert data == [1]


def test_task_returning_refs(ray):
    @ray.remote
    def inner():
        return "deep"

    @ray.remote
    def outer():
        return inner.remote()

    ref = ray.get(outer.remote())
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == "deep"


def test_nested_tasks(ray):
    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fib.remote(6)) == 8


def test_errors_keep_type_and_traceback(ray):
    @ray.remote
    def broken(x):
        raise KeyError(f"missing {x}")

    ref = broken.remote(7)
    with pytest.raises(KeyError) as info:
        ray.get(ref)
    err = info.value
    assert isinstance(err, RayTaskError)
    assert isinstance(err.cause, KeyError)
    assert "broken" in str(err) and "missing 7" in str(err)
    assert "in broken" in err.traceback_str
    with pytest.raises(RayTaskError):
        ray.get(ref)


def test_memory_error_is_caught_as_memory_error(ray):
    @ray.remote
    def oom():
        raise MemoryError("no room for the buffer")

    with pytest.raises(MemoryError, match="no room") as info:
        ray.get(oom.remote())
    assert isinstance(info.value, RayTaskError) and isinstance(info.value.cause, MemoryError)
    try:
        ray.get(oom.remote())
    except MemoryError as e:
        assert "oom" in str(e)


def test_every_builtin_exception_type_is_kept():
    """A task's builtin exception, whatever its type, is caught by `except ThatType`."""
    import builtins

    samples = {UnicodeDecodeError: ("utf-8", b"\xff", 0, 1, "bad"),
               UnicodeEncodeError: ("ascii", "\xff", 0, 1, "bad"),
               UnicodeTranslateError: ("\xff", 0, 1, "bad"),
               # (a group of BaseExceptions cannot also be an Exception, as RayTaskError is)
               BaseExceptionGroup: ("g", [ValueError()]), ExceptionGroup: ("g", [ValueError()])}
    for cls in vars(builtins).values():
        if isinstance(cls, type) and issubclass(cls, BaseException):
            cause = cls(*samples.get(cls, ("x",)))
            dual = RayTaskError("f", "tb", cause).as_instanceof_cause()
            assert isinstance(dual, cls) and isinstance(dual, RayTaskError), cls
            assert dual.args == cause.args and dual.cause is cause, cls


def test_exception_group_keeps_its_type(ray):
    @ray.remote
    def many():
        raise ExceptionGroup("several", [ValueError("a"), KeyError("b")])

    with pytest.raises(ExceptionGroup) as info:
        ray.get(many.remote())
    assert isinstance(info.value, RayTaskError)
    assert [type(e) for e in info.value.exceptions] == [ValueError, KeyError]


def test_failed_dependency_propagates(ray):
    @ray.remote
    def broken():
        raise ZeroDivisionError("upstream")

    @ray.remote
    def downstream(x):
        return x

    with pytest.raises(ZeroDivisionError, match="upstream"):
        ray.get(downstream.remote(broken.remote()))


def test_unpicklable_result_is_clear_error(ray):
    import threading

    @ray.remote
    def lock():
        return threading.Lock()

    with pytest.raises(Exception, match="serialize|pickle"):
        ray.get(lock.remote())


def test_infeasible_task_in_local_mode_raises(ray):
    if raylite_runtime_name() != "local":
        pytest.skip("the cluster reports infeasible tasks as a warning (tests/cluster)")
    with pytest.raises(TaskUnschedulableError, match="CPU"):
        ray.remote(num_cpus=64)(lambda: 1).remote()


def test_resources_and_gpu_ids(ray):
    @ray.remote(num_gpus=1)
    def gpu():
        return ray.get_gpu_ids()

    assert len(ray.get(gpu.remote())) == 1
    assert ray.get_gpu_ids() == []  # the driver holds no GPU

    @ray.remote(resources={"custom": 1})
    def custom():
        return "ok"

    assert ray.get(custom.remote()) == "ok"


def test_runtime_env_vars(ray):
    import os

    @ray.remote(runtime_env={"env_vars": {"RAYLITE_DEMO_VAR": "yes"}})
    def read():
        return os.environ.get("RAYLITE_DEMO_VAR")

    assert ray.get(read.remote()) == "yes"
    with pytest.raises(ValueError, match="pip"):
        ray.remote(runtime_env={"pip": 3})(lambda: 1)


def test_remote_function_pickles_into_tasks(ray):
    @ray.remote
    def double(x):
        return 2 * x

    @ray.remote
    def caller(fn, x):
        return ray.get(fn.remote(x))

    assert ray.get(caller.remote(double, 4)) == 8
    import cloudpickle

    assert pickle.loads(cloudpickle.dumps(double)).__name__ == "double"


def test_user_exception_with_its_own_signature(ray):
    class TwoArgError(Exception):  # defined here: workers cannot import this test module
        def __init__(self, code, detail):
            super().__init__(code, detail)
            self.code = code
            self.detail = detail

    @ray.remote
    def fail():
        raise TwoArgError(404, "not here")

    with pytest.raises(TwoArgError) as info:
        ray.get(fail.remote())
    assert (info.value.code, info.value.detail) == (404, "not here")
    assert isinstance(info.value, RayTaskError) and "not here" in str(info.value)


def test_error_in_a_list_get(ray):
    @ray.remote
    def maybe(x):
        if x == 2:
            raise ValueError("two")
        return x

    refs = [maybe.remote(i) for i in range(4)]
    with pytest.raises(ValueError, match="two"):
        ray.get(refs)
    assert ray.get(refs[3]) == 3


@pytest.mark.cluster_only("a task has finished before cancel() can be called")
def test_cancel_running_task(ray):
    import time

    from raylite.exceptions import TaskCancelledError

    @ray.remote
    def forever():
        while True:
            time.sleep(0.01)

    ref = forever.remote()
    ray.wait([ref], timeout=0.2)
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=10)


def test_job_namespace_and_runtime_env(runtime_kwargs):
    # on the ray tier this joins a Ray started without the namespace: raylite's calls use it
    # all the same, in the driver and in every task and actor (a warning says Ray's own don't)
    import os
    import warnings

    import raylite

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raylite.init(namespace="team", runtime_env={"env_vars": {"RAYLITE_JOB_VAR": "job"}},
                     **runtime_kwargs)
    assert raylite.get_runtime_context().namespace == "team"

    @raylite.remote
    def read():
        return os.environ.get("RAYLITE_JOB_VAR"), raylite.get_runtime_context().namespace

    assert raylite.get(read.remote()) == ("job", "team")
    assert "RAYLITE_JOB_VAR" not in os.environ

    @raylite.remote
    class Named:
        def ping(self):
            return "pong"

        def namespace(self):
            return raylite.get_runtime_context().namespace

    keep = Named.options(name="n").remote()  # (an actor with no handle left ends, as in Ray)
    assert raylite.get(raylite.get_actor("n", namespace="team").ping.remote()) == "pong"
    assert raylite.get(raylite.get_actor("n").ping.remote()) == "pong"
    assert raylite.get(raylite.get_actor("n").namespace.remote()) == "team"

    @raylite.remote
    def in_a_task():  # the job's namespace is the task's: it finds the driver's actor, and
        found = raylite.get(raylite.get_actor("n").ping.remote())  # names its own there
        Named.options(name="from-task", lifetime="detached").remote()
        return found, raylite.get(read.remote())[1], raylite.util.list_named_actors()

    found, nested_ns, listed = raylite.get(in_a_task.remote())
    assert (found, nested_ns) == ("pong", "team")
    assert {"n", "from-task"} <= set(listed)
    detached = raylite.get_actor("from-task", namespace="team")
    assert raylite.get(detached.ping.remote()) == "pong"
    raylite.kill(detached)
    del keep


def raylite_runtime_name():
    import raylite

    return raylite._runtime.current().name


def test_exceptions_are_retried_by_the_same_rule_everywhere(ray, tmp_path):
    # The owner core's rule on both runtimes: retry while retries are left and the cause
    # matches retry_exceptions; max_retries=-1 retries forever.
    tries = tmp_path / "tries"

    def flaky(fails):
        with open(tries, "a") as f:
            f.write("x")
        if len(tries.read_text()) <= fails:
            raise KeyError("flaky")
        return len(tries.read_text())

    assert ray.get(ray.remote(max_retries=2, retry_exceptions=[KeyError])(flaky).remote(2)) == 3
    tries.unlink()
    with pytest.raises(KeyError):
        ray.get(ray.remote(max_retries=1, retry_exceptions=[KeyError])(flaky).remote(5))
    assert tries.read_text() == "xx"
    tries.unlink()
    with pytest.raises(KeyError):
        ray.get(ray.remote(max_retries=3, retry_exceptions=[ValueError])(flaky).remote(5))
    assert tries.read_text() == "x"
    tries.unlink()
    assert ray.get(ray.remote(max_retries=-1, retry_exceptions=True)(flaky).remote(4)) == 5
