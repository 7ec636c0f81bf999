"""Hosts one actor in a worker: its instance and how calls run.

    max_concurrency == 1, sync methods ─► the worker's main thread, in arrival order
    max_concurrency  > 1, sync methods ─► a thread pool of that size
    any async def method               ─► one asyncio loop thread; up to
                                          max_concurrency (default 1000) calls at once
    concurrency_groups={"io": 2, ...}  ─► one limit per group (a thread pool, or a
                                          semaphore for async actors); methods name
                                          their group with @method(concurrency_group=...)

Each caller's calls arrive on one connection, in order, so per-caller
ordering holds for the sequential case.
"""
from __future__ import annotations

import inspect
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .._core.task_events import FAILED, error_info
from .._protocol import messages as m
from .._runtime import context, execution
from .._serialization import dumps_error, loads
from ..exceptions import TaskCancelledError
from .streams import run_stream, run_stream_async

if TYPE_CHECKING:  # the executor hands itself in; this module never imports it
    from .task_executor import Executor


class ActorHost:
    def __init__(self, executor: Executor, spec: m.ActorSpec, instance: Any, scope: context.TaskScope):
        self.ex = executor
        self.spec = spec
        self.instance = instance
        self.cls = type(instance)
        self.scope = scope
        self.name = spec.meta.class_name
        self.loop: Any = None   # an async actor's asyncio event loop
        self.pool: Any = None
        self.futures: dict[bytes, Any] = {}             # async calls in flight, by task id
        self.inflight: set = set()                       # thread-pool calls in flight
        self.ended = False      # KillActor sent: calls not started yet never run
        self.closing = False    # __ray_terminate__ came: later calls are refused, earlier ones run
        groups = dict(spec.concurrency_groups or {})
        self.groups: dict = {}
        if spec.meta.is_async:
            import asyncio  # here, not at the top: a worker without an async actor never
                            # imports it (with ssl, about 8 ms of the fork server's preload)
            self.loop = asyncio.new_event_loop()
            groups[None] = spec.max_concurrency or 1000
            ready = threading.Event()
            threading.Thread(target=self._loop_main, args=(groups, ready), daemon=True,
                             name="raylite-actor-loop").start()
            ready.wait()
        elif (spec.max_concurrency or 1) > 1 or groups:
            from concurrent.futures import ThreadPoolExecutor

            groups[None] = spec.max_concurrency or 1
            self.groups = {g: ThreadPoolExecutor(n, thread_name_prefix=f"raylite-actor-{g or 'default'}")
                           for g, n in groups.items()}
            self.pool = self.groups[None]
        self.concurrent = self.loop is not None or self.pool is not None
        if self.concurrent and executor.marks is not None:  # calls interleave: each write is
            executor.marks.share()                          # its call's (output.py)

    def _loop_main(self, groups: dict, ready: threading.Event) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)
        self.groups = {g: asyncio.Semaphore(n) for g, n in groups.items()}
        ready.set()
        self.loop.run_forever()

    def _group(self, t: m.PushActorTask) -> Any:
        group = t.group if t.group is not None else \
            self.spec.meta.methods[t.method].concurrency_group if t.method in self.spec.meta.methods else None
        return self.groups.get(group, self.groups[None])

    def end(self, reason: str) -> None:
        """The actor ends on purpose: the daemon marks it dead (no restart), with `reason`,
        and stops us. Calls that arrive meanwhile get no reply: their callers lose the
        connection, ask the daemon, and fail with that reason (Ray: queued calls fail)."""
        if not self.ended:
            self.ended = True
            self.ex.rt.send_daemon(m.KillActor(self.spec.actor_id, True, reason))

    def _ending(self, t: m.PushActorTask) -> bool:
        """True when this call is not run: the actor has ended, or the call ends it. On a
        concurrent actor, __ray_terminate__ (sent too when the last handle went away) ends it
        once the calls submitted before it have finished, as on a sequential one."""
        if self.ended:
            return True
        if t.method == execution.TERMINATE:
            if self.concurrent:
                self.closing = True
                self._end_after_pending(self._terminate_reason(t))
            else:
                self.end(self._terminate_reason(t))
            return True
        return False

    def _end_after_pending(self, reason: str) -> None:
        if self.loop is not None:  # after the loop has started every call submitted before
            self.loop.call_soon_threadsafe(self._end_when_async_calls_done, reason)
            return
        pending = set(self.inflight)

        def wait_then_end() -> None:
            from concurrent.futures import wait

            wait(pending)
            self.end(reason)

        threading.Thread(target=wait_then_end, name="raylite-actor-ending", daemon=True).start()

    def _end_when_async_calls_done(self, reason: str) -> None:
        pending = list(self.futures.values())

        async def wait_then_end() -> None:
            import asyncio

            if pending:
                await asyncio.wait(pending)
            self.end(reason)

        self.loop.create_task(wait_then_end())

    def _terminate_reason(self, t: m.PushActorTask) -> str:
        """__ray_terminate__ called by the user, or sent (with UNREFERENCED) when the
        creator's last handle went away."""
        try:
            args, _ = self.ex.rt.decode_blob(t.args)
        except Exception:  # whatever was passed, the actor still ends
            args = ()
        return execution.UNREFERENCED if args == (execution.UNREFERENCED,) else execution.TERMINATED

    def submit(self, conn: Any, t: m.PushActorTask) -> None:
        if self.closing or self._ending(t):
            return
        if self.pool is not None:
            fut = self._group(t).submit(self.run_inline, conn, t)
            self.inflight.add(fut)
            fut.add_done_callback(self.inflight.discard)
        else:
            self.loop.call_soon_threadsafe(self._start_async, conn, t)

    def cancel(self, task_id: bytes) -> None:
        fut = self.futures.get(task_id)
        if fut is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(fut.cancel)

    def _call_scope(self, t: m.PushActorTask, name: str) -> context.TaskScope:
        """The actor's scope for one call: its task id, name and method."""
        s = self.scope
        return context.TaskScope(t.task_id, s.actor_id, s.actor_name, s.resources, s.gpu_ids,
                                 s.was_restarted, s.job_id, name,
                                 getattr(self.cls, t.method, None), s.runtime_env, s.placement)

    def _prepare(self, t: m.PushActorTask) -> tuple[Any, tuple, dict]:
        method = execution.actor_method(self.instance, t.method)
        args, kwargs = self.ex.resolve_args(t.args, t.inlined)
        return method, args, kwargs

    def run_inline(self, conn: Any, t: m.PushActorTask) -> None:
        if self._ending(t):
            return
        name = f"{self.name}.{t.method}"
        if t.task_events:
            self.ex.run_started(t.task_id, t.attempt, self.ex.job_id, name)
        marks = self.ex.marks  # which call prints (output.py): one at a time, or shared
        if marks is not None:
            if self.concurrent:
                marks.enter_thread(t)
            else:
                marks.begin(t.task_id, t.attempt)
        try:
            if t.task_id in self.ex.cancelled:
                raise KeyboardInterrupt
            scope = self._call_scope(t, name)
            with context.scope(scope):
                method, args, kwargs = self._prepare(t)
                value = method(*args, **kwargs)
                if t.stream is not None:  # a generator method: values go out as they come
                    value = run_stream(self.ex, conn, t, value, name)
                elif type(value) is execution.GENERATOR:  # num_returns=N: drained in results()
                    value = execution.in_scope(value, lambda: context.scope(scope))
            reply = self.ex.results(t.task_id, value, t.return_ids, t.owner, name, self.name)
        except BaseException as exc:
            reply = self._failed(t, exc, name)
        if marks is not None:
            if self.concurrent:
                marks.leave_thread(t)
            else:
                marks.end()
        if t.task_events:
            self.ex.reply_ran(conn, reply, t.task_id, t.attempt)
        elif reply is not None:
            self.ex.reply(conn, reply)

    def _failed(self, t: m.PushActorTask, exc: BaseException, name: str) -> m.TaskDone | None:
        """The reply for a call that raised; None when the actor ends instead."""
        if isinstance(exc, KeyboardInterrupt) or _cancelled_in_asyncio(exc):
            return m.TaskDone(t.task_id, (), dumps_error(TaskCancelledError(t.task_id.hex())), False)
        if isinstance(exc, execution.ActorExit):
            self.end(execution.EXITED)
            return None
        return self.ex.failure(t.task_id, exc, name, self.name)

    def _start_async(self, conn: Any, t: m.PushActorTask) -> None:
        fut = self.loop.create_task(self._run_async(conn, t))
        self.futures[t.task_id] = fut

    async def _run_async(self, conn: Any, t: m.PushActorTask) -> None:
        name = f"{self.name}.{t.method}"
        if t.task_events:
            self.ex.run_started(t.task_id, t.attempt, self.ex.job_id, name)
        marks = self.ex.marks  # this asyncio task's writes are this call's (output.py)
        if marks is not None:
            marks.enter_task(t)
        try:
            async with self._group(t):
                with context.scope(self._call_scope(t, name)):
                    if t.inlined or _has_refs(t):  # fetching may block: not on the loop
                        method, args, kwargs = await self.loop.run_in_executor(None, self._prepare, t)
                    else:
                        method = execution.actor_method(self.instance, t.method)
                        args, kwargs = self.ex.rt.decode_blob(t.args)
                    value = method(*args, **kwargs)
                    if t.stream is not None:  # a generator method: values go out as they come
                        value = await run_stream_async(self.ex, conn, t, value, name)
                    elif inspect.isawaitable(value):
                        value = await value
                    elif type(value) is execution.GENERATOR:  # num_returns=N: drained later
                        scope = self._call_scope(t, name)
                        value = execution.in_scope(value, lambda: context.scope(scope))
            reply = self.ex.results(t.task_id, value, t.return_ids, t.owner, name, self.name)
        except BaseException as exc:
            reply = self._failed(t, exc, name)
        finally:
            self.futures.pop(t.task_id, None)
            if marks is not None:
                marks.leave_task(t)
        if t.task_events:
            self.ex.reply_ran(conn, reply, t.task_id, t.attempt)
        elif reply is not None:
            self.ex.reply(conn, reply)


def _has_refs(t: m.PushActorTask) -> bool:
    return type(t.args) is not bytes or b"_rebuild_ref" in t.args


def _construct(marks: Any, cls: type, args: tuple, kwargs: dict, actor_id: bytes,
               attempt: int) -> Any:
    """The instance; what __init__ prints is marked as the creation task's (output.py)."""
    if marks is None:
        return cls(*args, **kwargs)
    marks.begin(actor_id, attempt)
    try:
        return cls(*args, **kwargs)
    finally:
        marks.end()


def start_actor(ex: Executor, msg: m.StartActor) -> ActorHost | None:
    spec = msg.spec
    attempt = msg.restarts  # the creation task's attempt: one per incarnation
    ex.job_id = spec.job_id
    ex.current_name = spec.meta.class_name
    ex.rt.set_job(spec.job_id, spec.namespace)
    env = dict(spec.env_vars or {})
    if msg.gpu_ids:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in msg.gpu_ids)
    import os

    os.environ.update(env)  # the process belongs to this actor for life
    scope = context.TaskScope(actor_id=spec.actor_id, actor_name=spec.name, resources=spec.demand,
                              gpu_ids=msg.gpu_ids, was_restarted=msg.restarts > 0, job_id=spec.job_id,
                              runtime_env=spec.given_env, placement=spec.placement_group)
    context.process_actor = scope
    ex.rt.actor_id = spec.actor_id
    try:
        execution.extend_sys_path(spec.sys_path)
        if ex.env is not None:
            ex.env.ready()  # the runtime_env's setup hook, once; RuntimeEnvSetupError if broken
        if spec.task_events:  # the creation task's run: its id is the actor's, its attempt
            ex.run_started(spec.actor_id, attempt, spec.job_id,  # the incarnation's number
                           f"{spec.meta.class_name}.__init__")   # (_core/actor_attempts.py)
        cls = loads(spec.cls)
        with context.scope(scope._replace(name=f"{spec.meta.class_name}.__init__",
                                          function=getattr(cls, "__init__", None))):
            args, kwargs = ex.resolve_args(spec.args, spec.inlined)
            instance = _construct(ex.marks, cls, args, kwargs, spec.actor_id, attempt)
    except BaseException as exc:
        err = execution.task_error(exc, f"{spec.meta.class_name}.__init__", spec.meta.class_name)
        if spec.task_events and (spec.actor_id, attempt) in ex.started:  # its owner hears of
            ex.run_ended(spec.actor_id, attempt, False)      # a death only: the worker says why
            ex.ran.append((spec.actor_id, attempt, FAILED, time.time(), error_info(err)))
            ex.rt.send_task_events()  # now: this worker is stopped once the daemon hears
        ex.rt.send_daemon(m.ActorStarted(spec.actor_id, dumps_error(err)))
        return None
    if spec.task_events:
        ex.run_ended(spec.actor_id, attempt, True)
    host = ActorHost(ex, spec, instance, scope)
    ex.rt.send_daemon(m.ActorStarted(spec.actor_id, None))
    return host


def _cancelled_in_asyncio(exc: BaseException) -> bool:
    """An asyncio cancellation (only an async actor's call can raise one, and it imported
    asyncio)."""
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.CancelledError)
