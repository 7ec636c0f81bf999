"""The runtime factory: init()'s arguments in, a concrete Runtime out.

Runtimes register by name ("local", "cluster"); adding one (a client mode,
an adapter) is one module calling `register()`. `choose()` is the name rule:

    local_mode=True (or RAYLITE_LOCAL_MODE=1)  -> "local"
    RAYLITE_RUNTIME=<name>                     -> that registered runtime
    neither                                    -> "cluster"

An unknown name is a ValueError listing the registered ones. `resolve()` is
the address rule, pure and unit-tested:

    local_mode=True                       -> ("local", None)
    address or RAYLITE_ADDRESS:
      "local"                             -> start a new cluster on this machine
      "auto"                              -> the cluster `raylite start` recorded (the
                                             head, else a node here that joined one),
                                             else ConnectionError
      "host:port"                         -> join that cluster (through this machine's
                                             node when one here joined that head: _api)
      "ray://host:port"                   -> the same, at the head's Ray client port
                                             (`raylite start --head` listens on 10001 too)
    neither                               -> the recorded cluster if it is alive,
                                             else start a new one

The record (<temp>/raylite_current_cluster) is trusted only when the temp dir and the
record are this user's alone (_private_files); otherwise NotPrivateError names the path.
"""
from __future__ import annotations

import importlib
import os
from typing import Callable, NamedTuple

from .base import Runtime

# name -> "module:callable" (imported on first use) or a callable
_REGISTRY: dict[str, "str | Callable[[InitRequest], Runtime]"] = {
    "local": "raylite._runtime.local:LocalRuntime",
    "cluster": "raylite._runtime.cluster_boot:create",
    "ray": "raylite._runtime.ray_runtime:RayRuntime",  # the optional extra raylite[ray]
}


RAY_CLIENT_SCHEME = "ray://"  # Ray Client's address form: joins the head on its client port


class InitRequest(NamedTuple):
    """init()'s arguments after validation, plus how to reach the cluster."""
    mode: str = "local"            # "local" | "start" | "connect"
    address: str | None = None     # host:port when mode == "connect"
    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict = {}  # never mutated
    object_store_memory: int | None = None
    namespace: str | None = None
    runtime_env: dict | None = None
    log_to_driver: bool = True
    temp_dir: str | None = None    # None: _config.default_temp_dir()
    task_events: bool = True       # enable_task_events: record this driver's tasks' events


def register(name: str, factory: "str | Callable[[InitRequest], Runtime]") -> None:
    """Makes a runtime available by name (a callable, or 'module:attribute' imported lazily)."""
    _REGISTRY[name] = factory


def runtime_names() -> list[str]:
    return sorted(_REGISTRY)


def recorded_address(temp_dir: str) -> str | None:
    """The address `raylite start` recorded on this machine, if that cluster is alive.
    NotPrivateError if the temp dir or the record is not this user's alone."""
    from .. import _private_files as private

    if not private.check_dir(temp_dir):
        return None
    text = private.read_text(os.path.join(temp_dir, "raylite_current_cluster"))
    try:
        address, pid = (text or "").split()[:2]
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return None
    return address


def joined_node(temp_dir: str, head: str | None = None) -> str | None:
    """The address of a live node daemon on this machine that joined a head (`head`, or,
    when None, any head on another machine: nodes of a head on this one, as
    cluster_utils starts them, are that head's business), from its record
    <temp>/raylite_nodes/<pid> ("address pid session head")."""
    from .. import _private_files as private

    d = os.path.join(temp_dir, "raylite_nodes")
    if not (private.check_dir(temp_dir) and private.check_dir(d)):
        return None
    for name in sorted(os.listdir(d)):
        try:
            address, pid, _, joined = (private.read_text(os.path.join(d, name)) or "").split()[:4]
            if joined == head or head is None and not _on_this_machine(joined):
                os.kill(int(pid), 0)
                return address
        except (OSError, ValueError, private.NotPrivateError):
            continue
    return None


def _on_this_machine(address: str) -> bool:
    from .._protocol.transport import LOOPBACK, source_ip

    host = address.rpartition(":")[0].strip("[]")
    return host in LOOPBACK or host.startswith("127.") or source_ip(host) == host


def through_local_node(address: str, temp_dir: str) -> str:
    """`address` (a head's host:port), or, when the head is on another machine and a node
    of this machine joined it, that node's address: drivers join through their own node."""
    if _on_this_machine(address):
        return address
    return joined_node(temp_dir, address) or address


def resolve(local_mode: bool, address: str | None, env_address: str | None,
            recorded: "Callable[[], str | None]") -> tuple[str, str | None]:
    """Returns (mode, address) where mode is 'local', 'start' or 'connect'."""
    if local_mode:
        return "local", None
    addr = address if address is not None else env_address
    if addr is None:
        found = recorded()
        return ("connect", found) if found else ("start", None)
    if not isinstance(addr, str):
        raise TypeError(f"address must be a string like 'host:port', 'auto' or 'local', got {addr!r}.")
    if addr == "local":
        return "start", None
    if addr == "auto":
        found = recorded()
        if not found:
            raise ConnectionError("address='auto' found no running raylite cluster on this machine. "
                                  "Start one with `raylite start --head`, or call init() without "
                                  "an address to start a local cluster.")
        return "connect", found
    return "connect", host_port(addr)


def host_port(addr: str) -> str:
    """The 'host:port' to connect to for a cluster address given as 'host:port' or as
    'ray://host:port' (Ray Client's form: a head's client port). ValueError otherwise."""
    hostport = addr[len(RAY_CLIENT_SCHEME):] if addr.startswith(RAY_CLIENT_SCHEME) else addr
    host, sep, port = hostport.rpartition(":")
    if "://" in host or not sep or not host or not port.isdigit():
        raise ValueError(f"Bad address {addr!r}: expected 'host:port', 'ray://host:port', "
                         "'auto' or 'local'.")
    return hostport


def choose(local_mode: bool, name: str | None) -> str:
    """The registered runtime init() uses: "local" for local mode, else `name` (from
    RAYLITE_RUNTIME), else "cluster". ValueError when that name is not registered."""
    if local_mode:
        return "local"
    name = name or "cluster"
    if name not in _REGISTRY:
        raise ValueError(_unknown(name))
    return name


def _unknown(name: str) -> str:
    return (f"RAYLITE_RUNTIME={name!r} names no registered runtime; registered: "
            f"{', '.join(runtime_names())}. Unset RAYLITE_RUNTIME to use 'cluster', or register "
            "one first: raylite._runtime.factory.register(name, factory), where factory is a "
            "callable taking an InitRequest and returning a Runtime (or 'module:attribute').")


def create(name: str, request: InitRequest) -> Runtime:
    """Builds the runtime registered as `name` (importing it on first use)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(_unknown(name))
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(request)
