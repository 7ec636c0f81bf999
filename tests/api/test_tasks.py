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
        ray.remote(runtime_env={"pip": ["x"]})(lambda: 1)


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


def raylite_runtime_name():
    import raylite

    return raylite._runtime.current().name
