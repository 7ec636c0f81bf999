"""register_serializer / deregister_serializer (Ray's ray.util.serialization API).

    register_serializer(Point, serializer=lambda p: (p.x, p.y),
                        deserializer=lambda t: Point(*t))

From then on every value this process sends (task arguments and results,
put(), actor calls) pickles an instance of exactly `Point` as
`deserializer(serializer(point))`; the deserializer travels inside the bytes
(by value when it is defined in __main__ or is a lambda), so the process that
reads the value needs no registration of its own.

Registrations are per process, as in Ray: one made in the driver governs what
the driver sends; one made inside a task or actor governs what that worker
process sends (its results), for as long as the process lives. To use a
serializer everywhere, register it in the driver and at the start of the tasks
or actors that return such values.
"""
from __future__ import annotations

from typing import Any, Callable

from .. import _serialization


def register_serializer(cls: type, *, serializer: Callable[[Any], Any],
                        deserializer: Callable[[Any], Any]) -> None:
    """Serializes instances of `cls` with `serializer` and rebuilds them with `deserializer`."""
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer() takes a class, got {type(cls).__name__} {cls!r}.")
    if not callable(serializer) or not callable(deserializer):
        raise TypeError("register_serializer() needs callable serializer= and deserializer= "
                        "functions.")
    if cls in _serialization._FAST:
        raise ValueError(f"{cls.__name__} values are always pickled directly; a custom serializer "
                         "for them is not supported. Wrap them in a class of your own instead.")

    def reduce(obj: Any) -> tuple:
        return deserializer, (serializer(obj),)

    _serialization.add_reducer(cls, reduce)
    _tell_runtime()


def _tell_runtime() -> None:
    """A runtime whose pickler is not raylite's (RAYLITE_RUNTIME=ray) mirrors the reducers."""
    from .._runtime import current

    changed = getattr(current(), "serializers_changed", None)
    if changed is not None:
        changed()


def deregister_serializer(cls: type) -> None:
    """Forgets the serializer registered for `cls` in this process (no effect if there is none)."""
    _serialization.remove_reducer(cls)
    _tell_runtime()
