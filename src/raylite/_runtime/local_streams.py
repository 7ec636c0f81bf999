"""Streaming generator tasks in local mode: the body runs as it is consumed, on the caller's thread.

    f.remote() ─► arguments copied and resolved, body(*args) ─► a Python generator (nothing
                  of the body has run yet) ─► ObjectRefGenerator
    next(gen)  ─► core.streams.next says WAIT ─► _step: the body runs to its next yield,
                  inside the task's scope ─► core.streams.item (or the completion: its end,
                  or its error) ─► next() asks the core again
    gen.completed(), num_returns="dynamic" ─► the body runs to its end (items kept for next())
    ray.cancel(gen) ─► the body is closed; the stream ends with TaskCancelledError
    del gen    ─► the body is let go (Python closes it); items not taken are freed

As every local task runs at once on the caller's thread, a generator runs as its
consumer pulls, one step per item: a breakpoint in the body stops the caller's
own stack, an endless generator works, and backpressure holds by construction
(nothing is made ahead). Unlike a cluster, a body nobody consumes never runs.
The bookkeeping (items, the end, the error item, holds) is the owner core's,
as on a cluster (streams.py).
"""
from __future__ import annotations

import inspect
from typing import Any

from .. import _ids
from .._actor_ends import ended_error
from .._core.owner import Task
from .._serialization import dumps_with_refs
from ..exceptions import ObjectLostError, TaskCancelledError, TaskUnschedulableError
from . import context, execution
from .generator import ObjectRefGenerator
from .object_ref import ObjectRef
from .streams import StreamConsumer


_END = dumps_with_refs(None)[0]  # the end marker's value (never read by the API)


class _Body:
    """A local generator task in progress."""
    __slots__ = ("task", "done", "gen", "scope", "env", "actor", "make", "index", "skip")

    def __init__(self, task: Task, done: ObjectRef, scope: Any, env: Any, actor: Any, make: Any):
        self.task, self.done, self.scope, self.env, self.actor = task, done, scope, env, actor
        self.make = make       # () -> a fresh generator (the body called again, for a retry)
        self.gen: Any = None
        self.index = 0         # the next item's index
        self.skip = 0          # values a retry makes again, already delivered


class LocalStreams(StreamConsumer):
    """Methods of LocalRuntime for generator tasks (the runtime keeps `_bodies`)."""

    # -- submission -----------------------------------------------------------------
    def submit_stream(self, function: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        name = options.name or function._name
        self._check_feasible(options.demand(), "Task", name, TaskUnschedulableError)
        env = self._envs.of(context.current(), options.runtime_env)  # its own over its parent's (Ray's inheritance)
        task_id = _ids.new_id()
        scope = context.TaskScope(task_id=task_id, resources=options.demand(), job_id=self._job_id,
                                  name=name, function=function._function,
                                  runtime_env=self._envs.described(env), env=env)
        body = self._envs.wrap(env, function._function)  # ValueError: not here
        return self._start(task_id, name, body, args, kwargs, scope, (env or {}).get("env_vars"), None,
                           options.max_retries, options)

    def submit_actor_stream(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                            options: Any) -> Any:
        actor = self._hosts.get(actor_id)
        entry = self._gcs.actors.get(actor_id)
        if actor is None or entry is None or entry.state != "ALIVE" or actor.instance is None:
            done = self._new_refs(1)[0]
            self._set(done, error=self._death(actor_id))
            return self._opened(_ids.new_id(), done, options)
        scope = self._scope(actor, method)
        retries = self._core.actors.retries_for(self._core.actors.get(actor_id),
                                                options.max_task_retries)
        return self._start(scope.task_id, f"{actor.meta.class_name}.{method}",
                           execution.actor_method(actor.instance, method), args, kwargs, scope,
                           (actor.env or {}).get("env_vars"), actor, retries,
                           options)

    def _start(self, task_id: bytes, name: str, body: Any, args: tuple, kwargs: dict,
               scope: Any, env: Any, actor: Any, retries: int, options: Any) -> Any:
        done = self._new_refs(1)[0]
        task = Task(task_id, None, (), name, retries, options.retry_exceptions, None,
                    actor.id if actor is not None else None)
        try:
            args, kwargs = self._resolve(args, kwargs)
        except Exception as dep_err:  # an upstream task failed: this one fails the same way
            self._set(done, error=execution.task_error(dep_err, name))
            return self._opened(task_id, done, options)
        b = _Body(task, done, scope, env or {}, actor,
                  lambda: body(*args, **kwargs))
        with self._lock:
            self._core.tasks.running_here(task, "local")
            self._bodies[task_id] = b
        try:
            with self._in_task(b):
                b.gen = b.make()
            if not (inspect.isgenerator(b.gen) or inspect.isasyncgen(b.gen)):
                raise execution.stream_refused(name, b.gen)
        except Exception as exc:
            self._end(b, execution.task_error(exc, name))
        return self._opened(task_id, done, options)

    def _opened(self, task_id: bytes, done: ObjectRef, options: Any) -> Any:
        """The stream opens (the body made no item yet: it runs when consumed)."""
        with self._lock:
            self._core.streams.end_data = _END  # (a new core after each shutdown)
            self._core.streams.open(task_id, done._id)  # nothing waits on it yet: no wake-ups
        gen = ObjectRefGenerator(self, task_id, done)
        return self.stream_dynamic(gen) if options.num_returns == "dynamic" else gen

    # -- running the body, one item at a time ------------------------------------------
    def _in_task(self, b: _Body) -> Any:
        import contextlib

        stack = contextlib.ExitStack()
        if b.actor is not None:
            stack.enter_context(b.actor.call_lock)
        stack.enter_context(context.scope(b.scope))
        stack.enter_context(execution.env_vars(b.env))
        return stack

    def _step(self, task_id: bytes) -> None:
        """Runs the body to its next yield (or its end); the core gets what came."""
        b = self._bodies.get(task_id)
        if b is None:
            return
        try:
            while True:
                with self._in_task(b):
                    value = self._advance(b)
                if b.skip:
                    b.skip -= 1
                    continue
                break
        except (StopIteration, StopAsyncIteration):
            self._end(b, None)
            return
        except execution.ActorExit:
            a = b.actor
            self._mark_dead(a, ended_error(a.meta.class_name, a.id, execution.EXITED))
            self._end(b, self._death(b.actor.id))
            return
        except Exception as exc:
            if b.task.retry_error(exc):  # runs again from the start; delivered items dedupe
                b.skip, b.gen = b.index, b.make()
                return
            self._end(b, execution.task_error(exc, b.task.name,
                                              b.actor.meta.class_name if b.actor else None), True)
            return
        try:
            data, contained = dumps_with_refs(value)
        except Exception as exc:  # a value that cannot be stored fails the task there
            self._end(b, execution.task_error(exc, b.task.name), True)
            return
        with self._lock:
            id = _ids.stream_item_id(task_id, b.index)
            out = self._core.streams.item(task_id, b.index, data)
            if contained:
                self._core.objects.keep(id, contained)
        b.index += 1
        for _, wake in out:  # only wake-ups come out of an item
            wake()

    def _advance(self, b: _Body) -> Any:
        if inspect.isasyncgen(b.gen):
            return execution.run_coroutine(self._actor_loop(b.actor), b.gen.__anext__())
        return next(b.gen)

    def _end(self, b: _Body, error: Any, body: bool = False) -> None:
        """The stream's task ended (`error`: how it failed; `body`: its body raised it, which
        is then only the last item's, and the completion ref resolves to None, as in Ray)."""
        with self._lock:
            self._bodies.pop(b.task.task_id, None)
            self._core.tasks.drop(b.task.task_id)
            if body and self._core.streams.body_failed(b.task.task_id, error):
                error = None
        self._set(b.done, None, error)

    # -- the hooks of StreamConsumer ---------------------------------------------------
    def _stream_wait(self, task_id: bytes, id: bytes, timeout: float | None) -> None:
        if task_id not in self._bodies:  # the core's stream would have ended: never spin
            raise ObjectLostError(id.hex(), "The generator's task is gone from this runtime "
                                  "(was it created before the last shutdown()?).")
        self._step(task_id)

    def _stream_poke(self, task_id: bytes) -> None:
        if self.stream_ready(task_id) is False:
            self._step(task_id)

    def stream_completed(self, task_id: bytes) -> None:
        while task_id in self._bodies:
            self._step(task_id)

    def _stream_closed(self, task_id: bytes, worker: str | None) -> None:
        b = self._bodies.get(task_id)
        if b is not None:
            with self._lock:
                self._bodies.pop(task_id, None)
                self._core.tasks.drop(task_id)

    def _stream_cancel(self, ref: ObjectRef) -> None:
        """ray.cancel on a generator's completion ref: its body is closed, the stream ends."""
        for b in list(self._bodies.values()):
            if b.done._id == ref._id:
                if b.gen is not None and inspect.isgenerator(b.gen):
                    b.gen.close()
                self._end(b, TaskCancelledError(b.task.task_id.hex()))

    def _fulfil(self, id: bytes, value: Any, error: Any) -> None:
        self._set(ObjectRef(id), value, error)
