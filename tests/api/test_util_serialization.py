"""register_serializer / deregister_serializer (per process, as in Ray) and inspect_serializability."""
import io
import threading

import pytest

from raylite import _serialization
from raylite.util import deregister_serializer, inspect_serializability, register_serializer


@pytest.fixture(autouse=True)
def restore_serializers():
    """Registrations are process-wide: each test leaves none behind (in local mode neither
    do the tasks, which run in this process)."""
    saved = dict(_serialization._reducers)
    yield
    for cls in list(_serialization._reducers):
        deregister_serializer(cls)
    for cls, reducer in saved.items():
        _serialization.add_reducer(cls, reducer)


def _conn_class():
    class Conn:  # holds a lock: cannot be pickled as it is
        def __init__(self, addr):
            self.addr = addr
            self.lock = threading.Lock()
    return Conn


@pytest.mark.raylite_only("asserts raylite's message for a value that cannot be pickled (Ray's names the value differently)")
def test_a_registered_class_travels_and_is_rebuilt(ray):
    Conn = _conn_class()
    with pytest.raises(TypeError, match="Could not serialize Conn"):
        ray.put(Conn("db:1"))
    register_serializer(Conn, serializer=lambda c: c.addr, deserializer=lambda a: Conn(a))

    @ray.remote
    def addr_of(c):
        return c.addr, type(c.lock).__name__

    assert ray.get(addr_of.remote(Conn("db:2"))) == ("db:2", "lock")
    got = ray.get(ray.put(Conn("db:3")))
    assert got.addr == "db:3" and got is not None
    deregister_serializer(Conn)
    deregister_serializer(Conn)  # twice: no effect
    with pytest.raises(TypeError, match="Could not serialize Conn"):
        ray.put(Conn("db:4"))


def test_the_serializer_applies_to_exactly_that_class(ray):
    Conn = _conn_class()

    class Sub(Conn):
        pass

    register_serializer(Conn, serializer=lambda c: c.addr, deserializer=lambda a: ("rebuilt", a))
    assert ray.get(ray.put([Conn("a")])) == [("rebuilt", "a")]
    with pytest.raises(TypeError):
        ray.put(Sub("b"))


def test_a_worker_registers_its_own_to_send_results(ray):
    @ray.remote
    def make(register):
        from raylite.util import register_serializer

        class Handle:
            def __init__(self, n):
                self.n = n
                self.lock = threading.Lock()

        if register:
            register_serializer(Handle, serializer=lambda h: h.n,
                                deserializer=lambda n: ("handle", n))
        return Handle(7)

    assert ray.get(make.remote(True)) == ("handle", 7)  # the driver registered nothing


@pytest.mark.cluster_only("local mode has one process, so one set of registrations")
@pytest.mark.raylite_only("asserts raylite's message for a value that cannot be pickled (Ray's names the value differently)")
def test_registrations_are_per_process(ray):
    Conn = _conn_class()
    register_serializer(Conn, serializer=lambda c: c.addr, deserializer=lambda a: Conn(a))

    @ray.remote
    def echo(c):
        return c  # the worker did not register: its result cannot be pickled

    with pytest.raises(Exception, match="Could not serialize Conn"):
        ray.get(echo.remote(Conn("x")))


def test_bad_registrations_are_refused():
    with pytest.raises(TypeError, match="takes a class"):
        register_serializer(5, serializer=str, deserializer=int)
    with pytest.raises(TypeError, match="callable"):
        register_serializer(dict, serializer=None, deserializer=dict)
    with pytest.raises(ValueError, match="int values are always pickled directly"):
        register_serializer(int, serializer=str, deserializer=int)


def test_no_registration_means_the_plain_pickler():
    class P:
        pass
    assert _serialization._cloudpickle_dumps is _serialization.cloudpickle.dumps
    register_serializer(P, serializer=lambda p: 0, deserializer=lambda x: P())
    assert _serialization._cloudpickle_dumps is not _serialization.cloudpickle.dumps
    deregister_serializer(P)
    assert _serialization._cloudpickle_dumps is _serialization.cloudpickle.dumps


# -- inspect_serializability ------------------------------------------------------------
_GLOBAL_LOCK = threading.Lock()


def test_inspect_names_a_closure_variable():
    lock = threading.Lock()

    def fn():
        return lock

    out = io.StringIO()
    ok, failures = inspect_serializability(fn, name="fn", print_file=out)
    assert ok is False
    (f,) = failures
    assert (f.name, f.path, f.obj, f.parent) == ("lock", "fn -> lock", lock, fn)
    assert "fn -> lock" in out.getvalue() and "FAIL" in out.getvalue()


def test_inspect_names_a_global_a_nested_attribute_and_a_dict_key():
    uses_global = lambda: _GLOBAL_LOCK  # noqa: E731 (a lambda travels by value, with its globals)
    _, (f,) = inspect_serializability(uses_global, print_file=io.StringIO())
    assert f.name == "_GLOBAL_LOCK" and f.path == "_GLOBAL_LOCK" and f.parent is uses_global

    class Inner:
        def __init__(self):
            self.ok = 1
            self.lock = threading.Lock()

    class Outer:
        def __init__(self):
            self.inner = Inner()

    _, (f,) = inspect_serializability(Outer(), name="outer", print_file=io.StringIO())
    assert f.path == "outer -> inner -> lock" and isinstance(f.parent, Inner)
    _, (f,) = inspect_serializability({"good": 1, "bad": threading.Lock()}, name="d",
                                      print_file=io.StringIO())
    assert f.path == "d -> ['bad']"
    assert "FailTuple(['bad'] [path=d -> ['bad']" in repr(f)


def test_inspect_reports_the_object_itself_when_no_part_fails():
    class Refuses:
        def __reduce__(self):
            raise TypeError("no pickling for you")

    obj = Refuses()
    ok, (f,) = inspect_serializability(obj, print_file=io.StringIO())
    assert ok is False and f.obj is obj and f.name == "unknown" and f.parent is None


def test_inspect_depth_limits_the_search():
    class Inner:
        def __init__(self):
            self.lock = threading.Lock()

    class Outer:
        def __init__(self):
            self.inner = Inner()

    _, (f,) = inspect_serializability(Outer(), name="o", depth=1, print_file=io.StringIO())
    assert f.path == "o -> inner"


def test_inspect_a_picklable_object():
    out = io.StringIO()
    assert inspect_serializability([1, {"a": (2, 3)}], print_file=out) == (True, set())
    assert "OK" in out.getvalue()


def test_inspect_honours_registered_serializers():
    Conn = _conn_class()
    assert inspect_serializability(Conn("a"), print_file=io.StringIO())[0] is False
    register_serializer(Conn, serializer=lambda c: c.addr, deserializer=lambda a: Conn(a))
    assert inspect_serializability(Conn("a"), print_file=io.StringIO())[0] is True
