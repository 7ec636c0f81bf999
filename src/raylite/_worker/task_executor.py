"""Runs pushed tasks and actor calls inside a worker.

    task-channel connections ──┐
    (owners push tasks here)   ├─► main thread: run_forever() selects, reads, and hands
    daemon / other threads ────┘   each message to the process's rpc.Endpoint.deliver;
                                   messages for the main thread that another thread
                                   read come to it via queue + wake pipe
        ├─ PushTask      ─► function(*args) ─► TaskDone to the owner, same connection
        │                   (a streaming generator: a StreamItem per value first, streams.py)
        ├─ StartActor    ─► ActorHost(cls(*args)) ─► ActorStarted to the daemon
        └─ PushActorTask ─► ActorHost (main thread, thread pool or event loop)

The main thread reads the task connections itself, so a task starts without
a thread hand-off, and cancel() can interrupt it with SIGINT. CancelTask and
object requests arrive on general connections, read by their own threads. The
handlers of the first three are registered on the endpoint here; one delivered
on another thread (StartActor, read by the daemon connection's reader) posts
itself to the main thread, which delivers it again.

Task events (a task or call pushed with task_events set): the thread running it notes its
start (a task's in `run_start`, while `running` is its PushTask; an actor call's in
`started`). Its reply carries its start and end (and, once per connection, this worker's
identity: the connection's `told`), and its owner tells the GCS (reply_ran): a task costs
no event here.
A run with no reply (its actor exited) leaves a RAN event in `ran`; the runtime's
maintenance thread sends those (take_events), with a RUNNING event for each run still
going that it has not told of yet.

Arguments: values the owner inlined go into the local store first; other
top-level refs are fetched (the worker tells the daemon it is blocked
meanwhile). Results are serialized here; errors travel as RayTaskError with
the remote traceback.
"""
from __future__ import annotations

import os
import queue
from collections import deque
import selectors
import signal
import sys
import threading
import time
from traceback import format_exc
from typing import Any

from .._core.task_events import FINISHED, RAN, RUNNING
from .._core.whole_runs import PART, by_owner, joined
from .._protocol import messages as m
from .._protocol.messages_streams import StreamConsumed
from .._protocol.transport import SPIN
from .._runtime import context, execution
from .._runtime.object_ref import ObjectRef
from .._serialization import dumps_error, loads
from ..exceptions import ObjectLostError, RayTaskError, TaskCancelledError
from .actor_host import start_actor
from .reply import send_reply
from .streams import Gates, run_stream

_IDLE = 0.001  # seconds without a message after which runs told whole are sent
_STAY = 0.002  # seconds one connection's caller may keep the main thread polling for it
_get_ident = threading.get_ident
_tuple_new = tuple.__new__  # a TaskDone made without its Python-level __new__ (a hot path)


class Executor:
    def __init__(self, rt: Any):
        self.rt = rt
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.functions: dict[bytes, Any] = {}
        self.calls: dict[bytes, int] = {}          # function id -> runs (for max_calls)
        self.actor: Any = None
        self.env: Any = None                       # _runtime_env.worker.WorkerEnv, if any
        self.given: Any = None                     # the running (or last) task's env as given
        self.job_id: bytes | None = None
        self.current_name = "worker"
        self.marks: Any = None                     # output.TaskMarks: which task prints
        self.running: m.PushTask | None = None     # the task running on the main thread
        self.cancelled: set[bytes] = set()
        self.ran: deque = deque()      # RAN events of runs that ended, not sent yet
        self.runs: deque = deque()     # runs that returned of tasks pushed with their opening,
                                       # not sent yet: reported whole (_core/whole_runs.py)
        self.packed: list = []         # ... PART of them at a time, packed (by_owner)
        self._runs_lock = threading.Lock()  # taking runs: the loop's thread, the sender
        self._kinds: dict = {}         # a packed run's kind -> itself (whole_tasks.kinds)
        self.started: dict = {}        # (task id, attempt) -> (start, job id, name), running
        self.run_start = 0.0           # the start of the last task run with task events
        self._told: set = set()        # ... of those, the ones sent as RUNNING already
        # who runs the tasks (node id, worker id, pid, address), in the first reply (with task
        # events) on each connection
        self.ident = (rt.node_id.hex(), rt.worker_id.hex(), os.getpid(), rt.address) \
            if getattr(rt, "worker_id", None) and getattr(rt, "node_id", None) else None
        self.main_ident = threading.main_thread().ident
        self.loop_ident = self.main_ident  # the thread in run_forever(): the main one, in a worker
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._deliver = rt.endpoint.deliver
        on = rt.endpoint.on
        on(m.PushTask, self._on_push_task)
        on(m.PushActorTask, self._on_actor_call)
        on(m.StartActor, self._on_start_actor)
        on(m.CancelTask, lambda conn, msg: self.cancel(msg))
        self.gates = Gates()  # backpressure of the streaming generators running here
        on(StreamConsumed, self.gates.on_consumed)

    # -- called from other threads ---------------------------------------------
    def add_connection(self, conn: Any) -> None:
        """A task-channel connection: the main thread reads it from now on."""
        self._post(("conn", conn))

    def stop(self) -> None:
        self._post(None)

    def _post(self, item: Any) -> None:
        self.queue.put(item)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def cancel(self, msg: m.CancelTask) -> None:
        running = self.running
        if msg.force and running is not None and running.task_id == msg.task_id:
            os._exit(1)
        self.cancelled.add(msg.task_id)
        if running is not None and running.task_id == msg.task_id:
            signal.pthread_kill(self.main_ident, signal.SIGINT)
        elif self.actor is not None:
            self.actor.cancel(msg.task_id)

    # -- the main thread -----------------------------------------------------
    def interrupt(self, signum: int, frame: Any) -> None:
        """SIGINT (sent by cancel()) interrupts only a task that was cancelled while it
        runs: one that arrives just after its task finished is dropped here, instead of
        raising KeyboardInterrupt wherever the loop happens to be."""
        running = self.running
        if running is not None and running.task_id in self.cancelled:
            self.running = None  # once: a second SIGINT cannot hit the cancelled reply
            raise KeyboardInterrupt

    def run_forever(self) -> None:
        self.loop_ident = _get_ident()
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        while True:
            ready = sel.select(_IDLE if self.runs or self.packed else None)
            if not ready:  # idle: the runs told whole go now, not at the next tick (their
                self._send_runs()  # owner may be about to read their records)
                continue
            for key, _ in ready:
                conn = key.data
                if conn is None:
                    if not self._drain_queue(sel):
                        return
                    continue
                self._serve(sel, conn)

    def _send_runs(self) -> None:
        try:
            self.rt.send_task_events()
        except Exception:  # never this loop's end: those runs are not told
            self.runs.clear()
            self.packed = []
            sys.stderr.write(f"raylite worker: could not send task events:\n{format_exc()}")

    def _serve(self, sel: Any, conn: Any) -> None:
        """Runs what a readable task connection brings. A caller making calls one at a
        time sends the next one within tens of microseconds: wait for it polling, not
        asleep (transport.SPIN), for up to _STAY; then other connections get their turn."""
        now = time.perf_counter()
        quick = now - conn.answered < SPIN  # the caller's last call came that soon after our answer
        msgs = self._read(sel, conn, 0.0)
        until = now + _STAY
        deliver = self._deliver
        while msgs:
            for msg in msgs:
                deliver(conn, msg)
            conn.answered = now = time.perf_counter()
            if not quick or now > until or (self.actor is not None and self.actor.concurrent):
                return
            msgs = self._read(sel, conn, SPIN)

    def _read(self, sel: Any, conn: Any, spin: float) -> list:
        """The whole messages on a task connection (polling up to `spin` seconds); a
        connection that closed or sent garbage is dropped and gives []."""
        try:
            return conn.poll(spin)
        except (EOFError, OSError):
            sel.unregister(conn)
            conn.close()
            self.rt.inbound_closed(conn)
        except Exception:
            sel.unregister(conn)  # garbage on the wire: drop this connection only
            conn.close()
        return []

    def _drain_queue(self, sel: Any) -> bool:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return True
            if item is None:
                return False
            conn, msg = item
            if conn == "conn":
                sel.register(msg, selectors.EVENT_READ, msg)
            else:
                self._deliver(conn, msg)  # on the main thread now: its handler runs it

    # -- the endpoint's handlers (rpc.py) ------------------------------------------
    def _on_push_task(self, conn: Any, msg: m.PushTask) -> None:
        if _get_ident() != self.loop_ident:  # read by another thread: the main one runs it
            self._post((conn, msg))
            return
        self.rt.register_inbound(msg.owner, conn)
        self.run_task(conn, msg)

    def _on_actor_call(self, conn: Any, msg: m.PushActorTask) -> None:
        if _get_ident() != self.loop_ident:
            self._post((conn, msg))
            return
        self.rt.register_inbound(msg.owner, conn)
        if self.actor is None:
            return
        if self.actor.concurrent:
            self.actor.submit(conn, msg)
        else:
            self.actor.run_inline(conn, msg)

    def _on_start_actor(self, conn: Any, msg: m.StartActor) -> None:
        if _get_ident() != self.loop_ident:  # the daemon connection's reader delivered it
            self._post((conn, msg))
            return
        self.actor = start_actor(self, msg)

    def resolve_args(self, blob: Any, inlined: dict) -> tuple[tuple, dict]:
        """The call's arguments, read. An argument that cannot be read (ObjectLostError: its
        node died mid-read) is marked `unread_argument`: the owner then knows the function
        never ran (lineage.arg_lost), which an actor call needs to be sent again."""
        try:
            self.rt.add_inlined(inlined)
            args, kwargs = self.rt.decode_blob(blob)
            refs = [a for a in args if isinstance(a, ObjectRef)] + \
                [v for v in kwargs.values() if isinstance(v, ObjectRef)]
            if not refs:
                return args, kwargs
            got = self.rt.get(refs, None)
        except ObjectLostError as e:
            if not isinstance(e, RayTaskError):  # not the failure of the task that made it
                e.unread_argument = True  # travels with it (ObjectLostError pickles __dict__)
            raise
        values = dict(zip((r._id for r in refs), got))
        args = tuple(values[a._id] if isinstance(a, ObjectRef) else a for a in args)
        kwargs = {k: values[v._id] if isinstance(v, ObjectRef) else v for k, v in kwargs.items()}
        return args, kwargs

    def _function(self, t: m.PushTask) -> Any:
        fn = self.functions.get(t.function_id)
        if fn is None:
            execution.extend_sys_path(t.sys_path)
            try:
                fn = self.functions[t.function_id] = loads(t.function)
            except Exception as e:  # later calls on this connection come without the bytes
                fn = self.functions[t.function_id] = _Unloadable(e)
        if type(fn) is _Unloadable:
            raise fn.error
        return fn

    def reply(self, conn: Any, msg: m.TaskDone) -> None:
        """A task's or actor call's reply, after what it recorded (metrics, bars) is sent."""
        self.rt.task_ended()
        send_reply(conn, msg)

    def run_task(self, conn: Any, t: m.PushTask) -> None:
        self.job_id, self.current_name = t.job_id, t.name
        self.rt.set_job(t.job_id, t.namespace)
        env = dict(t.env_vars or {})
        if t.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in t.gpu_ids)
        ev = t.task_events
        if ev:  # noted for take_events (before `running`): a task runs alone on this thread
            start = self.run_start = time.time()
            opened = t.opened if self.ident is not None else None
            # with its opening, a run that returns is told whole from here, after the reply
            # (the common case); else results() stamps the reply with (start, end) when who
            # we are went on this connection before, or reply_ran adds it
            stamp = start if opened is None and conn.told else None
        else:
            stamp = None
        marks = self.marks
        if marks is not None:
            marks.begin(t.task_id, t.attempt, t.name)
        try:
            self.running = t
            if t.task_id in self.cancelled:
                raise KeyboardInterrupt
            with execution.env_vars(env):
                fn = self._function(t)  # a function that cannot be loaded fails its task
                if self.env is not None:
                    self.env.ready()  # the runtime_env's setup hook, once
                given = t.given_env  # one object per env: nested tasks' templates key on it
                if given is not None and given == self.given:
                    given = self.given
                self.given = given  # (the running task's: its threads' parent env too)
                scope = context.TaskScope(t.task_id, None, None, t.resources, t.gpu_ids, False,
                                          t.job_id, t.name, fn, given, t.placement)
                with context.scope(scope):
                    args, kwargs = self.resolve_args(t.args, t.inlined)
                    value = fn(*args, **kwargs)
                    if t.stream is not None:  # a generator: its values go out as they come
                        value = run_stream(self, conn, t, value, t.name)
                    elif type(value) is execution.GENERATOR:  # num_returns=N: drained in results()
                        value = execution.in_scope(value, lambda: _scoped(env, scope))
            self.running = None  # from here on a cancel comes too late to interrupt
            reply = self.results(t.task_id, value, t.return_ids, t.owner, t.name, None, stamp)
        except KeyboardInterrupt:
            reply = m.TaskDone(t.task_id, (), dumps_error(TaskCancelledError(t.task_id.hex())), False)
        except BaseException as exc:
            reply = self.failure(t.task_id, exc, t.name)
        finally:
            self.running = None
            self.cancelled.discard(t.task_id)
            if marks is not None:
                marks.end()
        if ev:
            if opened is not None and reply[2] is None:  # returned: told whole, from here
                end = time.time()
                self.reply(conn, reply)
                try:
                    created, parent = opened
                except (TypeError, ValueError):  # not an owner's: left out when packed
                    created = parent = None
                runs = self.runs
                runs.append((t.task_id, t.attempt, created, parent, start, end,
                             t.job_id or b"", t.name, t.owner))
                if len(runs) >= PART:  # while the caller reads the reply
                    self._pack_runs()
            elif reply[4] is not None:  # stamped by results()
                self.reply(conn, reply)
            else:  # the first reply on this connection, no identity, or a failure: reply_ran
                self.started[(t.task_id, t.attempt)] = (start, t.job_id or b"", t.name)
                self.reply_ran(conn, reply, t.task_id, t.attempt, start)
        else:
            self.reply(conn, reply)
        if self.env is not None and self.env.error is not None:
            self.rt.close_connections()  # its env is broken: the daemon may prepare it again
            os._exit(0)
        if t.max_calls:
            n = self.calls[t.function_id] = self.calls.get(t.function_id, 0) + 1
            if n >= t.max_calls:  # Ray's max_calls: this worker retires, the daemon replaces it
                self.rt.send_task_events()  # this run's end, before the worker is gone
                self.rt.close_connections()
                os._exit(0)

    # -- task events ---------------------------------------------------------------
    def run_started(self, task_id: bytes, attempt: int, job_id: bytes | None, name: str) -> float:
        """Notes a run's start (for RUNNING, should it outlast a batch); returns it."""
        start = time.time()
        self.started[(task_id, attempt)] = (start, job_id or b"", name)
        return start

    def reply_ran(self, conn: Any, reply: m.TaskDone | None, task_id: bytes, attempt: int,
                  start: float | None = None) -> None:
        """Sends the reply of a run with task events: it takes the run's start and end, and
        (once per connection) who ran it, and its owner tells the GCS (a short task is one
        row, see _core/owner/events.py). A run with no reply (its actor exited) is told by
        this worker (RAN). As little as can be is done before the reply leaves."""
        end = time.time()
        if reply is not None and self.ident is not None:
            key = (task_id, attempt)
            if start is None:
                start = self.started[key][0]
            if conn.told:
                ran = (start, end)
            else:  # who we are, once per connection: its owner remembers
                ran = (start, end, self.ident)
                conn.told = True
            self.reply(conn, _tuple_new(m.TaskDone, (task_id, reply[1], reply[2], reply[3], ran)))
            del self.started[key]
            return
        if reply is not None:
            self.reply(conn, reply)
        self.run_ended(task_id, attempt, reply is not None and reply.error is None, end)

    def run_ended(self, task_id: bytes, attempt: int, ok: bool, at: float | None = None) -> None:
        """The run is over (at `at`, default now): FINISHED when its results are stored
        (`ok`), else RAN."""
        start, job_id, name = self.started.pop((task_id, attempt))
        self.ran.append((task_id, attempt, FINISHED if ok else RAN,
                         time.time() if at is None else at, (job_id, name, start)))

    def _pack_runs(self) -> None:
        with self._runs_lock:
            runs, pop = self.runs, self.runs.popleft
            if runs:
                self.packed.append(by_owner([pop() for _ in range(len(runs))], self.ident,
                                            self._kinds))

    def take_runs(self) -> tuple[tuple, int]:
        """The runs told whole since the last call, by owner (TaskEvents.runs), and how many
        could not be (whole_runs.by_owner); called by one thread at a time: the sender."""
        self._pack_runs()
        with self._runs_lock:
            packed, self.packed = self.packed, []
        return joined(packed)

    def take_events(self) -> list:
        """The RAN events since the last call, and a RUNNING event for each run going on that
        was not told of yet (called by one thread at a time: the runtime's sender)."""
        ran, pop = self.ran, self.ran.popleft
        out = [pop() for _ in range(len(ran))]
        told = self._told
        now = self.running
        if now is not None and not now.task_events:
            now = None
        if self.started or told or now is not None:
            going = list(self.started.items())
            if now is not None:  # run_start is set before running: read after it, it is
                start = self.run_start  # this run's, or a later one's (this run has ended
                going.append(((now.task_id, now.attempt),  # then: its owner tells the truth)
                              (start, now.job_id or b"", now.name)))
            for key, (start, job_id, name) in going:
                if key not in told:
                    told.add(key)
                    out.append((key[0], key[1], RUNNING, start, (job_id, name)))
            if len(told) > len(going):
                told.intersection_update(k for k, _ in going)
        return out

    def results(self, task_id: bytes, value: Any, return_ids: tuple, owner: str, name: str,
                actor_repr: str | None = None, start: float | None = None) -> m.TaskDone:
        """The reply of a run that returned `value`; with `start` (task events), it carries
        the run's (start, end): end is now, after its results were stored."""
        late = None
        try:
            try:
                values = execution.split_returns(value, len(return_ids), name)
            except execution.PartialReturns as p:  # these stay readable, the rest fail
                values, late = p.values, p.cause
            out = []
            for rid, v in zip(return_ids, values):
                data, refs = self.rt.encode(v, rid, owner)
                self.rt.pin(refs)
                out.append(data)
            if late is not None:
                return self.failure(task_id, late, name, actor_repr)._replace(results=tuple(out))
            return _tuple_new(m.TaskDone, (task_id, tuple(out), None, False,
                                           None if start is None else (start, time.time())))
        except BaseException as exc:
            return self.failure(task_id, exc, name, actor_repr, retryable=False)

    def failure(self, task_id: bytes, exc: BaseException, name: str, actor_repr: str | None = None,
                retryable: bool = True) -> m.TaskDone:
        if isinstance(exc, SystemExit):
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        upstream = isinstance(exc, RayTaskError)
        err = execution.task_error(exc, name, actor_repr)
        return m.TaskDone(task_id, (), dumps_error(err), retryable and not upstream)


def _scoped(env: dict, scope: Any) -> Any:
    import contextlib

    stack = contextlib.ExitStack()
    stack.enter_context(execution.env_vars(env))
    stack.enter_context(context.scope(scope))
    return stack


class _Unloadable:
    """A function whose bytes did not unpickle here; each call raises the reason again."""
    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error
