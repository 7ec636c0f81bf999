"""Running one task body: the part LocalRuntime and cluster workers share.

    call(args) ──► value ──split_returns──► [value per return]
          └─ raises ──► RayTaskError(cause, remote traceback)

Pure of I/O: the caller resolves arguments and stores results.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

# Why an actor ended on purpose (execution.EXITED, ...): one vocabulary for every process.
from .._actor_ends import EXITED, KILLED, TERMINATED, UNREFERENCED, owner_exited  # noqa: F401
from ..exceptions import RayTaskError
from .._serialization import format_remote_traceback


TERMINATE = "__ray_terminate__"   # the actor method every handle has: end after pending calls
READY = "__ray_ready__"           # ... and this one: True once the actor is constructed
CALL = "__ray_call__"             # ... and this one: __ray_call__(fn, *a) runs fn(instance, *a)
BUILTIN_METHODS = (TERMINATE, READY, CALL)


class ActorExit(BaseException):
    """Raised by raylite.actor.exit_actor(); whoever runs the actor ends it."""


def actor_method(instance: Any, name: str) -> Any:
    """The callable an actor call of `name` runs: instance.name, or a built-in method."""
    try:
        return getattr(instance, name)
    except AttributeError:
        if name == READY:
            return _ready
        if name == CALL:
            return lambda fn, *args, **kwargs: fn(instance, *args, **kwargs)
        raise


def _ready() -> bool:
    return True


def task_error(exc: BaseException, function_name: str, actor_repr: str | None = None) -> RayTaskError:
    """Wraps a user exception raised by a task body, keeping its remote traceback."""
    if isinstance(exc, RayTaskError):  # an upstream failure re-raised by get(): pass it on
        return exc
    return RayTaskError(function_name, format_remote_traceback(exc, skip=1), exc,
                        pid=os.getpid(), actor_repr=actor_repr)


class PartialReturns(Exception):
    """A generator with num_returns=N raised after yielding `values` (fewer than N): those
    stay readable, the remaining returns hold `cause` (Ray's rule)."""

    def __init__(self, values: list, cause: BaseException):
        super().__init__(values, cause)
        self.values, self.cause = values, cause


def partial(exc: Exception) -> tuple:
    """(values that stay readable, the error for the rest) of a task body's exception."""
    return (exc.values, exc.cause) if type(exc) is PartialReturns else ((), exc)


GENERATOR = type((lambda: (yield))())


def split_returns(value: Any, num_returns: int, function_name: str) -> list:
    """One value per declared return; a mismatch is a clear error. A generator (a generator
    function called with num_returns=N) is run to its end here: PartialReturns when it raises."""
    if type(value) is GENERATOR:
        return _drain(value, num_returns, function_name)
    if num_returns == 1:
        return [value]
    if num_returns == 0:
        return []
    try:
        values = list(value)
    except TypeError:
        raise ValueError(f"{function_name} declares num_returns={num_returns} but returned a "
                         f"non-iterable {type(value).__name__}.") from None
    if len(values) != num_returns:
        raise ValueError(f"{function_name} declares num_returns={num_returns} but returned "
                         f"{len(values)} values.")
    return values


def in_scope(gen: Any, enter: Any) -> Any:
    """A generator returned with num_returns=N is drained after its task's scope closed:
    each of its steps runs inside `enter()` again (the task's context and env_vars)."""
    while True:
        with enter():
            try:
                value = next(gen)
            except StopIteration:
                return
        yield value


def _drain(gen: Any, num_returns: int, function_name: str) -> list:
    values: list = []
    try:
        for v in gen:
            values.append(v)
            if len(values) > num_returns:
                gen.close()
                break
    except Exception as exc:
        raise PartialReturns(values, exc) from None
    if len(values) != num_returns:
        raise ValueError(f"{function_name} declares num_returns={num_returns} but its generator "
                         f"yielded {'more' if len(values) > num_returns else len(values)} "
                         "values.")
    return values


def stream_refused(function_name: str, value: Any) -> TypeError:
    """A streaming task (num_returns="streaming"/"dynamic") whose body gave no generator."""
    return TypeError(f"{function_name} was called with num_returns='streaming' (or 'dynamic') "
                     f"but returned a {type(value).__name__}, not a generator: make it a "
                     "generator function (yield its values), or drop num_returns.")


_NO_ENV = contextlib.nullcontext()


def env_vars(env: dict | None) -> Any:
    """Sets runtime_env env_vars for the duration of a task, then restores them."""
    return _set_env(env) if env else _NO_ENV


@contextlib.contextmanager
def _set_env(env: dict):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def extend_sys_path(paths: tuple) -> None:
    """Appends the caller's import path entries this process lacks (never shadows its own)."""
    import sys

    have = set(sys.path)
    sys.path.extend(p for p in paths if p not in have)


def is_async_class(cls: type) -> bool:
    import inspect

    return any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
               for _, m in inspect.getmembers(cls, predicate=inspect.isfunction))


def run_coroutine(loop: Any, coro: Any) -> Any:
    """Runs `coro` on asyncio `loop` (running in another thread) and waits for its result."""
    import asyncio

    if asyncio._get_running_loop() is loop:  # waiting here would stop the loop it waits for
        coro.close()
        raise RuntimeError("An async actor method called an async method of its own actor through "
                           "a handle; in local mode that would wait forever. Call it directly "
                           "(await self.method()), or run on a cluster.")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
