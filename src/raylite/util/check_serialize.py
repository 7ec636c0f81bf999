"""inspect_serializability: names the part of an object that cannot be pickled.

    ok, failures = inspect_serializability(fn, name="fn")
    # ok is False; failures holds FailureTuple(lock [path=fn -> lock, ...])

The object is pickled whole first, as raylite pickles values (cloudpickle,
with this process's custom serializers). If that fails, its parts are tried
one by one: a function's closure cells and the globals it uses, a bound
method's instance, a class's methods, an instance's attributes (`__dict__`
and `__slots__`), a dict's values and a sequence's or set's items. Each part that fails is searched the same way, `depth` levels
down; the deepest failing parts are reported. When no single part fails, the
object itself is reported (its parts only fail together, or a custom
`__reduce__` fails). A report is printed to `print_file` (stdout by default).
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

from .. import _serialization


class FailureTuple:
    """One part that cannot be pickled: the object, its name, the object holding it and the path."""

    __slots__ = ("obj", "name", "parent", "path")

    def __init__(self, obj: Any, name: str, parent: Any, path: str = ""):
        self.obj = obj
        self.name = name
        self.parent = parent
        self.path = path

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [path={self.path}, obj={_short(self.obj)}, " \
               f"parent={_short(self.parent)}])"


def inspect_serializability(base_obj: Any, name: str | None = None, depth: int = 3,
                            print_file: Any = None) -> tuple[bool, set]:
    """(True, set()) if `base_obj` pickles; else (False, the parts that prevent it)."""
    out = print_file if print_file is not None else sys.stdout
    label = name or _short(base_obj)
    print(f"Checking serializability of {label}", file=out)
    error = _pickle_error(base_obj)
    if error is None:
        print("  OK: it can be serialized.", file=out)
        return True, set()
    failures: set = set()
    root = name or "unknown"
    if not _search(base_obj, [name] if name else [], depth, failures, {id(base_obj)}):
        failures.add(FailureTuple(base_obj, root, None, name or ""))
    print(f"  FAIL: {error}", file=out)
    for f in sorted(failures, key=lambda f: f.path):
        print(f"  cannot be serialized: {f.path or root} ({type(f.obj).__name__}: "
              f"{_short(f.obj)}): {_pickle_error(f.obj)}", file=out)
    print("  Create such objects inside the task or actor that uses them, or pass what is "
          "needed to rebuild them.", file=out)
    return False, failures


def _search(obj: Any, path: list, depth: int, failures: set, seen: set) -> bool:
    """Adds the deepest failing parts of `obj` to `failures`; False if no single part fails."""
    if depth <= 0:
        return False
    found = False
    for name, part in _parts(obj):
        if id(part) in seen or _pickle_error(part) is None:
            continue
        seen.add(id(part))
        found = True
        child = path + [name]
        if not _search(part, child, depth - 1, failures, seen):
            failures.add(FailureTuple(part, name, obj, " -> ".join(child)))
    return found


def _parts(obj: Any) -> Iterator[tuple[str, Any]]:
    import inspect
    import types

    if isinstance(obj, types.MethodType):
        yield "__self__", obj.__self__
        yield "__func__", obj.__func__
    elif isinstance(obj, types.FunctionType):
        try:
            cv = inspect.getclosurevars(obj)
        except (TypeError, ValueError):
            return
        yield from cv.nonlocals.items()
        yield from cv.globals.items()
    elif isinstance(obj, type):
        for k, v in vars(obj).items():
            if isinstance(v, (types.FunctionType, staticmethod, classmethod)):
                yield k, getattr(v, "__func__", v)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield f"[{k!r}]", v
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            yield f"[{i}]", v
    else:
        yield from getattr(obj, "__dict__", {}).items()
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot) and slot != "__weakref__":
                    yield slot, getattr(obj, slot)


def _pickle_error(obj: Any) -> str | None:
    try:
        _serialization._cloudpickle_dumps(obj, 5)
        return None
    except Exception as e:
        return f"{type(e).__name__}: {e}"


def _short(value: Any) -> str:
    try:
        r = repr(value)
    except Exception:
        r = object.__repr__(value)
    return r if len(r) <= 80 else r[:77] + "..."
