"""as_completed, map_unordered, get_node_ip_address and list_named_actors (Ray's ray.util helpers).

    for value in as_completed(refs, chunk_size=2):      # values as their tasks finish
        ...
    for value in map_unordered(f, items, backpressure_size=8):   # f is a remote function
        ...

Both are built on wait() and get(): each round waits for up to `chunk_size`
refs, then yields their values (or the refs themselves, `yield_obj_refs=True`).
Extra keywords (`timeout`, `fetch_local`) go to every wait(), as in Ray: a
`timeout` bounds each round, not the whole iteration, which goes on until every
ref has been yielded. A task's error is raised when its value is reached.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterable, Iterator, Sequence

from .. import _api
from .._api import ObjectRef

DEFAULT_CHUNK_SIZE = 10
DEFAULT_BACKPRESSURE_SIZE = 100


def _check_size(name: str, v: Any, none_ok: bool = False) -> None:
    if v is None and none_ok:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"`{name}` must be >= 1, got {v!r}.")


def as_completed(refs: Sequence[ObjectRef], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 yield_obj_refs: bool = False, **kwargs: Any) -> Iterator[Any]:
    """Yields the values of `refs` (or the refs) in batches of up to `chunk_size`, as they finish."""
    _check_size("chunk_size", chunk_size)
    remaining = list(refs)
    for r in remaining:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"as_completed() takes a list of ObjectRefs, got "
                            f"{type(r).__name__} in the list.")
    return _drain(remaining, chunk_size, yield_obj_refs, kwargs)


def _drain(pending: list, chunk_size: int, yield_obj_refs: bool, kwargs: dict) -> Iterator[Any]:
    while pending:
        ready, pending = _api.wait(pending, num_returns=min(chunk_size, len(pending)), **kwargs)
        if ready:
            yield from (ready if yield_obj_refs else _api.get(ready))


def map_unordered(fn: Any, items: Iterable[Any], *,
                  backpressure_size: int | None = DEFAULT_BACKPRESSURE_SIZE,
                  chunk_size: int = DEFAULT_CHUNK_SIZE, yield_obj_refs: bool = False,
                  **kwargs: Any) -> Iterator[Any]:
    """Runs `fn.remote(item)` for each item and yields the results as they finish.

    At most `backpressure_size` tasks are in flight (None: no limit); results come
    in batches of up to `chunk_size`.
    """
    if not callable(getattr(fn, "remote", None)):
        raise TypeError(f"map_unordered() takes a remote function (decorate it with "
                        f"@raylite.remote), got {type(fn).__name__} {fn!r}.")
    _check_size("chunk_size", chunk_size)
    _check_size("backpressure_size", backpressure_size, none_ok=True)
    return _map_unordered(fn, items, backpressure_size, chunk_size, yield_obj_refs, kwargs)


def _map_unordered(fn: Any, items: Iterable[Any], backpressure_size: int | None, chunk_size: int,
                   yield_obj_refs: bool, kwargs: dict) -> Iterator[Any]:
    pending: list = []
    for item in items:
        pending.append(fn.remote(item))
        if backpressure_size is not None and len(pending) >= backpressure_size:
            ready, pending = _api.wait(pending, num_returns=min(chunk_size, len(pending)),
                                       **kwargs)
            if ready:
                yield from (ready if yield_obj_refs else _api.get(ready))
    yield from _drain(pending, chunk_size, yield_obj_refs, kwargs)


def list_named_actors(all_namespaces: bool = False) -> list:
    """The named actors that are not dead: their names in the current namespace, or
    with `all_namespaces=True` a dict {"name", "namespace"} for each in every namespace."""
    from .._runtime import require

    rt = require()
    named = rt.named_actors()
    if all_namespaces:
        return [{"name": name, "namespace": ns} for ns, name in named]
    here = rt.context().namespace
    return [name for ns, name in named if ns == here]


def get_node_ip_address(address: str | None = None) -> str:
    """The IP address of the node this process runs on.

    Initialized: the address the node's daemon listens on (127.0.0.1 unless
    `raylite start --host` said otherwise). Given `address` ("host:port"): the
    local address a connection to it would leave from (no packet is sent).
    Otherwise 127.0.0.1, where a node started here listens.
    """
    if address is not None:
        return _route_to(address)
    if not _api.is_initialized():
        return "127.0.0.1"
    from ..runtime_context import get_runtime_context

    me = get_runtime_context().get_node_id()
    for node in _api.nodes():
        if node.get("NodeID") == me:
            return node["NodeManagerAddress"]
    return "127.0.0.1"


def _route_to(address: str) -> str:
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be 'host:port', got {address!r}.")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host.strip("[]"), int(port)))  # UDP: picks a route, sends nothing
        return s.getsockname()[0]
