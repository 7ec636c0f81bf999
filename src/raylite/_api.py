"""init/shutdown/get/put/wait/...: each a few lines delegating to the current runtime.

Argument checking lives here, once for every runtime; the runtimes receive
clean lists and numbers.

    init() ──lock──► factory.choose() (which runtime) ─► factory.resolve() (which cluster)
                 ├─► factory.create() ──► _runtime.install()
                 └─► atexit / SIGTERM hooks (registered once per process)
"""
from __future__ import annotations

import atexit
import numbers
import os
import signal
import threading
from typing import Any

from . import _config, _options, _runtime
from ._runtime import factory, require
from ._runtime.base import InitInfo
from ._runtime.generator import ObjectRefGenerator
from ._runtime.object_ref import ObjectRef
from .actor import ActorClass, ActorHandle
from .remote_function import RemoteFunction

# Ray's init() keywords that only change what Ray shows or records: accepted, and noted
# once per process (a warning) when they ask for something raylite does not do.
_IGNORED_KEYWORDS = {
    "include_dashboard": "raylite has no dashboard (`raylite status` shows the cluster)",
    "dashboard_host": "raylite has no dashboard",
    "dashboard_port": "raylite has no dashboard",
    "logging_format": "raylite's log lines keep their own format",
    "logging_config": "raylite's log lines keep their own format",
    "_system_config": "raylite has none of Ray's internal settings",
}
_INIT_KEYWORDS = ("address", "num_cpus", "num_gpus", "resources", "object_store_memory",
                  "local_mode", "ignore_reinit_error", "namespace", "runtime_env",
                  "logging_level", "log_to_driver", "configure_logging", "_temp_dir",
                  "enable_task_events",
                  *_IGNORED_KEYWORDS)
_hooks_pid: int | None = None
_noted: set[str] = set()  # ignored keywords already noted in this process


class RayContext:
    """What init() returns: the cluster's address and ids; a context manager that shuts down."""

    def __init__(self, info: InitInfo):
        self.address = info.address
        self.node_id = info.node_id
        self.namespace = info.namespace
        self.session_dir = info.session_dir
        self.address_info = {"address": info.address, "node_id": info.node_id,
                              "namespace": info.namespace, "session_dir": info.session_dir}

    def __getitem__(self, key: str) -> Any:
        return self.address_info[key]

    def __enter__(self) -> "RayContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()

    def __repr__(self) -> str:
        return f"RayContext(address={self.address!r}, namespace={self.namespace!r})"


def _check_number(name: str, v: Any) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0):
        raise ValueError(f"{name} must be a number >= 0, got {v!r}.")


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict | None = None, object_store_memory: int | None = None,
         local_mode: bool = False, ignore_reinit_error: bool = False, namespace: str | None = None,
         runtime_env: dict | None = None, logging_level: int | str = 20,
         log_to_driver: bool | None = None, include_dashboard: bool | None = None,
         configure_logging: bool = True, _temp_dir: str | None = None,
         enable_task_events: bool = True, **kwargs: Any) -> RayContext:
    """Starts or joins a cluster (or runs everything in-process with local_mode=True).

    Ray's presentation keywords (include_dashboard, dashboard_host, dashboard_port,
    logging_format, logging_config, _system_config) are accepted; one that asks for
    something raylite does not do is noted once with a warning. enable_task_events=False
    stops this process recording task events (list_tasks, timeline) for its tasks."""
    unknown = sorted(k for k in kwargs if k not in _IGNORED_KEYWORDS)
    if unknown:
        raise RuntimeError(f"Unknown keyword argument(s) to init(): {', '.join(unknown)}. "
                           f"Valid ones: {', '.join(_INIT_KEYWORDS)}.")
    _note_ignored({"include_dashboard": include_dashboard, **kwargs})
    _check_number("num_cpus", num_cpus)
    _check_number("num_gpus", num_gpus)
    _check_number("object_store_memory", object_store_memory)
    resources = _options.OPTIONS["resources"].check("resources", resources)
    runtime_env = _options.validate_runtime_env(runtime_env)
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ValueError(f"namespace must be a non-empty string, got {namespace!r}.")
    with _runtime.lock:
        rt = _runtime.current()
        if rt is not None:
            if ignore_reinit_error:
                return RayContext(rt.info())
            raise RuntimeError("Maybe you called raylite.init twice by accident? raylite is already "
                               "initialized: call raylite.shutdown() first, or pass "
                               "ignore_reinit_error=True to reuse the running runtime.")
        cfg = _config.from_env()
        if cfg.job_runtime_env:  # a submitted job's entrypoint: its tasks get the job's env too
            from ._runtime_env.validate import merge

            runtime_env = merge(_options.validate_runtime_env(cfg.job_runtime_env), runtime_env)
        namespace = namespace or cfg.namespace
        name = factory.choose(local_mode or cfg.local_mode, cfg.runtime)
        if name != "ray":  # Ray runs what it runs (conda, containers ...): passed on as given
            from ._runtime_env.validate import refuse_unsupported

            refuse_unsupported(runtime_env)
        temp_dir = _temp_dir or cfg.temp_dir
        if name == "ray":  # Ray resolves its own addresses: RAY_ADDRESS, "auto", host:port
            mode, addr = ("connect", address) if address is not None else ("start", None)
        else:
            mode, addr = factory.resolve(name == "local", address, cfg.address,
                                         lambda: factory.recorded_address(temp_dir)
                                         or factory.joined_node(temp_dir))
            if mode == "connect" and addr in (address, cfg.address):  # an explicit head:port
                addr = factory.through_local_node(addr, temp_dir)
        if mode == "connect" and (num_cpus is not None or num_gpus is not None or resources):
            raise ValueError("When connecting to an existing cluster, num_cpus, num_gpus and "
                             "resources must not be provided: set them when the cluster starts "
                             "(raylite start --head --num-cpus ...).")
        if configure_logging:
            import logging

            logging.getLogger("raylite").setLevel(logging_level)
        request = factory.InitRequest(
            mode=mode, address=addr, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
            object_store_memory=object_store_memory, namespace=namespace, runtime_env=runtime_env,
            log_to_driver=cfg.log_to_driver if log_to_driver is None else bool(log_to_driver),
            temp_dir=temp_dir, task_events=bool(enable_task_events))
        rt = factory.create(name, request)
        rt.job_runtime_env = runtime_env
        _runtime.install(rt)
        _register_hooks()
        return RayContext(rt.info())


def _note_ignored(given: dict) -> None:
    """Warns once per process per ignored keyword that asks for something (a dashboard,
    task events, a log format): a false value (None, False, {}) asks for nothing."""
    import warnings

    asked = [k for k, v in given.items() if v and k not in _noted]
    if asked:
        _noted.update(asked)
        why = "; ".join(f"{k}: {_IGNORED_KEYWORDS[k]}" for k in asked)
        warnings.warn(f"raylite.init() ignores {', '.join(asked)} ({why}).", UserWarning,
                      stacklevel=3)


def _register_hooks() -> None:
    """atexit (and SIGTERM, when the program has no handler of its own) run shutdown()."""
    global _hooks_pid
    if _hooks_pid == os.getpid():
        return
    _hooks_pid = os.getpid()
    atexit.register(shutdown)
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    shutdown()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def shutdown() -> None:
    """Disconnects; stops a cluster this driver started. Calling it twice is fine."""
    with _runtime.lock:
        rt = _runtime.current()
        if rt is None:
            return
        _runtime.install(None)
        rt.shutdown()


def is_initialized() -> bool:
    return _runtime.current() is not None


def _auto_init() -> Any:
    with _runtime.lock:
        rt = _runtime.current()
        if rt is not None:
            return rt
        if not _config.from_env().auto_init:
            raise RuntimeError("raylite is not initialized and RAYLITE_AUTO_INIT=0 turns off "
                               "auto-init: call raylite.init() first.")
        init()
        return _runtime.current()


_runtime.auto_init = _auto_init


def _check_timeout(timeout: Any) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or timeout < 0):
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}.")


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    """The value of a ref, or the values of a list of refs; raises a task's error."""
    _check_timeout(timeout)
    if isinstance(object_refs, ObjectRef):
        return require().get([object_refs], timeout)[0]
    if not isinstance(object_refs, list):
        raise ValueError(f"'object_refs' must either be an ObjectRef or a list of ObjectRefs, "
                         f"got {type(object_refs).__name__}.")
    for r in object_refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"get() takes ObjectRefs, got {type(r).__name__} in the list.")
    return require().get(object_refs, timeout)


def put(value: Any) -> ObjectRef:
    """Stores a value in the object store and returns its ref."""
    if isinstance(value, ObjectRef):
        raise TypeError("Calling put() on an ObjectRef is not allowed: it is already stored. "
                        "Wrap it in a list to put a reference to it: put([ref]).")
    return require().put(value)


def wait(object_refs: list, *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list, list]:
    """Returns (ready, not_ready) once num_returns refs are ready or the timeout passes."""
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, list):
        raise TypeError(f"wait() expected a list of ObjectRefs, got {type(object_refs).__name__}.")
    if not object_refs:
        return [], []
    if len({r._id for r in object_refs if type(r) is ObjectRef}) != len(object_refs):
        if any(type(r) is ObjectRefGenerator for r in object_refs):
            return _wait_streams(object_refs, num_returns=num_returns, timeout=timeout,
                                 fetch_local=fetch_local)
        for r in object_refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"wait() expected a list of ObjectRefs, got {type(r).__name__} in the list.")
        if len(set(object_refs)) != len(object_refs):
            raise ValueError("wait() requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return: {num_returns!r} (must be >= 1).")
    if num_returns > len(object_refs):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number of "
                         f"objects provided to wait() ({len(object_refs)}).")
    _check_timeout(timeout)
    return require().wait(object_refs, num_returns, timeout, bool(fetch_local))


def _wait_streams(items: list, **kw: Any) -> tuple[list, list]:
    """wait() on a list with ObjectRefGenerators: one is ready when its next item is in or its
    stream is over (its probe ref, runtime.stream_probe, is ready)."""
    probes = [r._rt.stream_probe(r._task_id) if type(r) is ObjectRefGenerator else r
              for r in items]
    ready, _ = wait(probes, **kw)
    chosen = {id(p) for p in ready}
    return ([r for r, p in zip(items, probes) if id(p) in chosen],
            [r for r, p in zip(items, probes) if id(p) not in chosen])


def kill(actor: Any, *, no_restart: bool = True) -> None:
    """Kills an actor at once (pending calls fail with RayActorError)."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill() only supports actor handles; for tasks use cancel(). Got {actor!r}.")
    require().kill_actor(actor._actor_id, bool(no_restart))


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancels the task that produces object_ref; get() then raises TaskCancelledError."""
    if type(object_ref) is ObjectRefGenerator:  # its task: the stream ends with TaskCancelledError
        object_ref = object_ref._done
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() takes the ObjectRef a task returned, got {type(object_ref).__name__}.")
    require().cancel(object_ref, bool(force), bool(recursive))


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of a live named actor; ValueError if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty actor name, got {name!r}.")
    actor_id, meta = require().get_named_actor(name, namespace)
    return ActorHandle(actor_id, meta)


def nodes() -> list[dict]:
    return require().nodes()


def cluster_resources() -> dict:
    return require().cluster_resources()


def available_resources() -> dict:
    return require().available_resources()


def timeline(filename: str | None = None) -> list:
    """The tasks the cluster's task-event store keeps, as Chrome trace events (one row per
    worker, each task a span); written as JSON to `filename` when given (load it in
    Perfetto or chrome://tracing). Works in local mode too; on the ray
    runtime these are Ray's own (ray.timeline())."""
    import json
    import time

    from ._core.trace import trace_events
    from ._protocol.messages import GetTaskEvents

    rt = _runtime.current()
    if rt is None:
        raise RuntimeError("raylite.timeline() needs raylite.init() first (for a running "
                           "cluster from the shell: `raylite timeline --output FILE`).")
    if rt.name == "ray":  # Ray's own trace of Ray's task events
        events = rt.timeline()
    else:
        events = trace_events(rt.task_events(GetTaskEvents(0), 30.0).records,
                              int(time.time() * 1e6))
    if filename is not None:
        with open(filename, "w") as f:
            json.dump(events, f)
    return events


def get_gpu_ids() -> list:
    """The GPU ids assigned to the calling task or actor."""
    return list(require().context().gpu_ids)


def remote(*args: Any, **kwargs: Any) -> Any:
    """Turns a function into a task or a class into an actor, with or without options."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@remote takes either no arguments ('@raylite.remote') or keyword "
                        "options ('@raylite.remote(num_cpus=2)').")
    return lambda f: _make_remote(f, kwargs)


def _make_remote(target: Any, options: dict) -> Any:
    if isinstance(target, type):
        return ActorClass(target, options)
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"@remote applies to functions and classes, not {type(target).__name__}.")
