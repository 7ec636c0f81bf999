"""Ray's errors as raylite's, for the ray runtime (RAYLITE_RUNTIME=ray).

Python's `except` does not consult __subclasscheck__, so an error Ray raises is
rebuilt where it surfaces (get, wait, futures, submission, actor calls) as
raylite's class of the same name, its message kept and Ray's error as __cause__:

    ray.exceptions.RayTaskError(ValueError) ─► raylite RayTaskError(ValueError)
                                                (the user's exception as __cause__)
    ray.exceptions.<Name>                   ─► raylite.exceptions.<Name>, else RayError
        also a ValueError / TimeoutError ... when Ray's is (ActorAlreadyExistsError)

`ray` is imported inside the functions only: this module loads with the runtime.
"""
from __future__ import annotations

import functools
import re
from typing import Any

from .. import exceptions as rl_exc


def translate(e: BaseException) -> BaseException:
    """Ray's error `e` as raylite's class of the same name (anything else unchanged)."""
    import ray.exceptions as rx

    if not isinstance(e, rx.RayError):
        return e
    if isinstance(e, rx.RayTaskError):
        cause = e.cause
        if cause is not None:
            cause = translate(cause)
        if isinstance(cause, rl_exc.RayTaskError):  # an upstream failure: pass it on
            return cause
        name, tb, pid = _task_error_parts(e)
        err = rl_exc.RayTaskError(name, tb, cause, pid, None).as_instanceof_cause()
        err.__cause__ = cause if cause is not None else e
        return err
    cls = next((getattr(rl_exc, c.__name__) for c in type(e).__mro__
                if c.__name__ in rl_exc.__all__), rl_exc.RayError)
    builtin = next((c for c in type(e).__mro__ if c.__module__ == "builtins"
                    and c not in (Exception, BaseException, object)), None)
    if builtin is not None and not issubclass(cls, builtin):  # e.g. Ray's ActorAlreadyExistsError
        cls = _also(cls, builtin, type(e).__name__)            # is a ValueError: so is ours
    msg = str(e)
    if issubclass(cls, rl_exc.RayActorError):
        err = cls(msg, actor_id=getattr(e, "actor_id", None), cause=e)
    elif issubclass(cls, rl_exc.ObjectLostError):
        err = cls(getattr(e, "object_ref_hex", "") or "", msg)
    elif cls is rl_exc.TaskCancelledError:
        err = cls(getattr(e, "task_id", None), msg)
    else:
        err = cls(msg)
    err.__cause__ = e
    return err


_ALSO: dict[tuple, type] = {}


def _also(cls: type, builtin: type, name: str) -> type:
    """A raylite error class that is also `builtin`, named as Ray's class is."""
    key = (cls, builtin, name)
    out = _ALSO.get(key)
    if out is None:
        out = _ALSO[key] = type(name, (cls, builtin), {"__module__": __name__})
    return out


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HEAD = re.compile(r"ray::(?P<name>.*?)\(\)\s*\(pid=(?P<pid>\d+)")


def _task_error_parts(e: Any) -> tuple[str, str, int | None]:
    """(function name, remote traceback, pid) of Ray's RayTaskError. Ray's dual class
    (RayTaskError(ValueError)) keeps only the cause and its text, so they are read from that."""
    text = _ANSI.sub("", str(e))
    head, _, tb = text.partition("\n")
    m = _HEAD.search(head)
    d = vars(e)
    name = d.get("function_name") or (m.group("name") if m else "task")
    pid = d.get("pid") or (int(m.group("pid")) if m else None)
    return name, tb if m else text, pid


def translated(fn: Any) -> Any:
    """Runs fn; a Ray error it raises leaves as raylite's."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            err = translate(e)
            if err is e:
                raise
            raise err  # __cause__ preset by translate(); __context__ is Ray's error
    return call
