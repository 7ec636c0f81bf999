"""One endpoint per process: the one way messages are dispatched and replies matched.

    reader (a connection's reader thread, the thread waiting in get() that holds the
    read turn, a worker's main loop, the daemon's reader under its lock)
        │ recv / poll
        ▼
    Endpoint.deliver(conn, msg) ── type(msg) ──► no handler ──► refused: logged (rate-
        │                                          limited), nothing changed
        │ validator(msg) says why ───────────────► refused, the same way
        ├─ a reply type (REPLIES' values): pending[msg.req] on this conn?
        │       yes ─► Call completed: result() wakes, callbacks run (on the reader)
        │       no  ─► the handler on() registered for that reply type, if any
        │              (state kept elsewhere: an owner's lease requests), else dropped
        └─ anything else ─► handlers[type](conn, msg); an exception is logged, the
                            reader goes on with the next message

    caller ── call(conn, req_msg) ──► id = next(ids); pending[id] = Call ──► send
           ◄─ Call.result(timeout) / add_done_callback(fn) ◄── reply matched above
    caller ── notify(conn, msg) ─────► send (one-way: nothing is pending)
    handler ─ reply(conn, request, reply_msg) ─► send, paired by the request's id
    reader ── lost(conn) ───────────► every call pending on conn fails with a
                                       ConnectionError naming the peer

Who reads. `serve(conn)` is a connection's reader thread: it reads whole frames
and delivers them, handing the read turn (read_turn.py) to a thread that waits in
get() for a reply on that connection, which then reads and delivers it itself (one
thread wake-up per call instead of two: cluster_objects.ObjectPlane._read_for);
both sides deliver through `drain(conn)`'s order, so a message read but not yet
handled is never lost. A worker's main thread reads its task connections and
delivers what they bring (task_executor.py); the node daemon reads each connection
on its own thread and delivers under its state lock (_node/server.py). `conn` is
whatever the reader delivers with and `send` can send to: a Connection, or (in the
daemon) its per-connection client record.

Sends go through `send(conn, msg)`, given to the endpoint: by default the
connection's own send (a client's sendall under the connection's send lock); the
node daemon passes its outbox (`_node/outbox.py`: queued while its state lock is
held, sent when it is released), so no send ever happens under a core's lock.
The endpoint holds no lock of its own: registering and completing a call are one
dict operation each, atomic under the GIL, and ids come from one
`itertools.count` per process, so ids that shells book in their own maps
(`ids`) never collide with the endpoint's.

The envelope is the message's first field, `req`. Every request type carries its
id there and `messages.REPLIES` names the reply type of each request type, which
carries the same id back in its own `req`. One-way messages carry no id at all.
Measured against a real envelope (a `(id, reply_to, msg)` tuple around each
message in its frame): pickling and unpickling a frame took 0.17-0.32 us more
per message (TaskDone 5.3 -> 5.5 us, PushTask 6.6 -> 6.8-7.1 us of CPU, best of
60 interleaved rounds), about 1 % of a call's round trip for the two frames it
takes, and the hottest messages (PushTask, TaskDone, the actor calls) are
one-way and would carry an empty envelope for nothing. Declaring `req` the
envelope costs nothing per message, keeps every frame as it was, and lets
`validate.py` check the id as a field. The table is checked at import: each
request type and each reply type has `req` as its first field.

A reply is matched only on the connection its call went out on: a reply that
names another connection's call is refused like any bad message.

Call is the light future: a lock allocated held, released on completion;
`result(timeout)` waits on it (TimeoutError after `timeout`, and the call is
forgotten, as when the wait is interrupted (Ctrl-C): a late reply goes to the
reply type's handler, or is dropped);
`add_done_callback(fn)` runs fn(call) exactly once, at once when done, else on
the thread that completes it. No concurrent.futures machinery, no Condition.
"""
from __future__ import annotations

import _thread
import itertools
import logging
from typing import Any, Callable

from . import messages as m
from .ratelog import RateLimitedLog

Handler = Callable[[Any, Any], None]
_log = logging.getLogger("raylite.rpc")
_REPLY_TYPES = frozenset(m.REPLIES.values())


def _check_table() -> None:
    for req, rep in m.REPLIES.items():
        for cls in (req, rep):
            if cls._fields[:1] != ("req",):
                raise TypeError(f"{cls.__name__} is in messages.REPLIES but its first field is "
                                f"not `req`: the id travels there")


_check_table()


class Call:
    """A request on its way: completed once, by its reply or by a failure."""

    __slots__ = ("id", "conn", "kind", "value", "error", "done", "_lock", "_cbs", "_pending")

    def __init__(self, id: int, conn: Any, kind: type, pending: dict):
        self.id, self.conn, self.kind = id, conn, kind
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = False
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._cbs: list | None = None
        self._pending = pending

    def result(self, timeout: float | None = None) -> Any:
        """The reply; the failure raised; TimeoutError when none came within `timeout`."""
        if not self.done:
            try:
                got = self._lock.acquire(True, -1 if timeout is None else timeout)
            except BaseException:  # KeyboardInterrupt: nobody waits any more
                self._pending.pop(self.id, None)
                raise
            if got:
                self._lock.release()
            elif self._pending.pop(self.id, None) is not None:
                raise TimeoutError(f"{_peer(self.conn)} did not answer {self.kind.__name__} "
                                   f"within {timeout}s")
            else:  # completed just now, by another thread: it is releasing the lock
                self._lock.acquire()
                self._lock.release()
        if self.error is not None:
            raise self.error
        return self.value

    def add_done_callback(self, fn: Callable[["Call"], Any]) -> None:
        """fn(self) once: now when done, else on the thread that completes the call."""
        cbs = self._cbs
        if cbs is None:
            cbs = self._cbs = _new_list(self)
        cbs.append(fn)
        if self.done:
            self._run_callbacks()

    def _finish(self, value: Any, error: BaseException | None) -> None:
        self.value, self.error = value, error
        self.done = True      # before the callbacks are looked at: see add_done_callback
        self._lock.release()
        if self._cbs:
            self._run_callbacks()

    def fail(self, error: BaseException) -> bool:
        """Completes the call with `error` unless it is done already; True when it did."""
        if self._pending.pop(self.id, None) is None:
            return False
        self._finish(None, error)
        return True

    def _run_callbacks(self) -> None:
        # Both the completing thread and a late add_done_callback may drain; list.pop() is
        # atomic, so each callback runs exactly once, on one of them.
        cbs = self._cbs
        while True:
            try:
                fn = cbs.pop(0)
            except IndexError:
                return
            try:
                fn(self)
            except Exception:
                _log.exception("a callback of %s to %s failed", self.kind.__name__, _peer(self.conn))


_list_lock = _thread.allocate_lock()


def _new_list(call: Call) -> list:
    """The call's callback list, made once even when two threads add their first callback."""
    with _list_lock:
        if call._cbs is None:
            call._cbs = []
        return call._cbs


def _peer(conn: Any) -> str:
    return getattr(conn, "peer", None) or repr(conn)


def _direct_send(conn: Any, msg: Any) -> None:
    conn.send(msg)


class Endpoint:
    """This process's dispatch table and its calls in flight."""

    __slots__ = ("handlers", "_fallback", "_pending", "ids", "validator", "send", "log",
                 "_refusals", "__weakref__")

    def __init__(self, send: Callable[[Any, Any], None] = _direct_send,
                 validator: Callable[[Any], "str | None"] | None = None,
                 log: logging.Logger = _log):
        self.handlers: dict[type, Handler] = {}   # the one dispatch table: type -> handler
        self._fallback: dict[type, Handler] = {}  # reply type -> handler for unmatched replies
        self._pending: dict[int, Call] = {}
        self.ids = itertools.count(1)             # shells that book their own ids use these too
        self.validator = validator
        self.send = send
        self.log = log
        self._refusals = RateLimitedLog(log)
        for t in _REPLY_TYPES:
            self.handlers[t] = self._answer

    # -- registration ----------------------------------------------------------
    def on(self, msg_type: type, handler: Handler) -> None:
        """handler(conn, msg) handles every `msg_type` delivered; for a reply type, every one
        that completes no call of this endpoint."""
        if msg_type in _REPLY_TYPES:
            self._fallback[msg_type] = handler
        else:
            self.handlers[msg_type] = handler

    # -- sending ---------------------------------------------------------------
    def call(self, conn: Any, msg: Any) -> Call:
        """Sends request `msg` (its `req` is set here) and returns its Call; a send that
        fails fails the call at once (ConnectionError), it never raises here."""
        kind = type(msg)
        if kind not in m.REPLIES:
            raise TypeError(f"{kind.__name__} is not a request type (messages.REPLIES); "
                            "send it with notify()")
        id = next(self.ids)
        c = self._pending[id] = Call(id, conn, kind, self._pending)
        try:
            self.send(conn, msg._replace(req=id))
        except OSError as e:
            c.fail(ConnectionError(f"cannot send {kind.__name__} to {_peer(conn)}: {e}"))
        return c

    def notify(self, conn: Any, msg: Any) -> None:
        """Sends a one-way message; OSError when the connection is gone."""
        self.send(conn, msg)

    def reply(self, conn: Any, request: Any, reply_msg: Any) -> None:
        """Answers `request` with `reply_msg` (given the request's id); a peer that is gone
        is no error here: its reader reports the loss."""
        if m.REPLIES.get(type(request)) is not type(reply_msg):
            raise TypeError(f"{type(reply_msg).__name__} does not answer {type(request).__name__} "
                            f"(messages.REPLIES)")
        if reply_msg.req != request.req:
            reply_msg = reply_msg._replace(req=request.req)
        try:
            self.send(conn, reply_msg)
        except OSError:
            pass

    # -- receiving -------------------------------------------------------------
    def deliver(self, conn: Any, msg: Any) -> None:
        """THE dispatch: a reply completes its call, anything else goes to its handler. A
        message of no handled type, or one the validator refuses, is logged (rate-limited)
        and changes nothing; a handler's exception is logged and goes no further."""
        if self.validator is not None and type(msg) in self.handlers:
            why = self.validator(msg)
            if why is not None:
                self.refuse(conn, msg, why)
                return
        self.deliver_checked(conn, msg)

    def deliver_checked(self, conn: Any, msg: Any) -> None:
        """deliver() without the validator, for a peer whose every message was checked
        already or built by our own code: the head daemon's direct link to the GCS in its
        process (the daemon validated what its clients sent before forwarding it)."""
        handler = self.handlers.get(type(msg))
        if handler is None:
            self.refuse(conn, msg, "this process does not handle that message")
            return
        try:
            handler(conn, msg)
        except Exception:
            self.log.exception("error handling %s from %s", type(msg).__name__, _peer(conn))

    def drain(self, conn: Any) -> None:
        """Delivers what was read from `conn` (its inbox), one message at a time: each leaves
        the inbox as its handling starts, so an exception (KeyboardInterrupt) anywhere
        leaves the rest to whichever side reads next."""
        inbox, deliver = conn.inbox, self.deliver
        while inbox:
            deliver(conn, inbox.popleft())

    def serve(self, conn: Any) -> None:
        """The reader thread of a connection: reads and delivers until it closes, yielding
        the read turn to a thread that waits in get() (read_turn.py); then closes it and
        fails its pending calls (lost)."""
        turn, inbox = conn.turn, conn.inbox
        while True:
            turn.background_wait()  # a thread in get() may be reading this connection itself
            if not inbox:           # else: what an interrupted reader left, handled first
                msgs = read(conn, None, self.log)
                if msgs is None:
                    break
                inbox.extend(msgs)
            self.drain(conn)
            turn.background_done()
        conn.close()
        self.lost(conn)

    def _answer(self, conn: Any, msg: Any) -> None:
        pending = self._pending
        c = pending.get(msg.req)
        if c is None:
            fallback = self._fallback.get(type(msg))
            if fallback is not None:
                fallback(conn, msg)
            else:  # its call timed out (or it was never asked for): nobody waits for it
                self.log.debug("dropped a %s from %s: it answers no pending call",
                               type(msg).__name__, _peer(conn))
        elif c.conn is not conn:
            self.refuse(conn, msg, "it answers a call made on another connection")
        elif type(msg) is not m.REPLIES[c.kind]:
            self.refuse(conn, msg, f"it does not answer {c.kind.__name__}")
        elif pending.pop(msg.req, None) is c:  # else it timed out or failed just now
            c._finish(msg, None)

    def refuse(self, conn: Any, msg: Any, why: str) -> None:
        self._refusals.warning(id(conn), "refused a %s from %s: %s", type(msg).__name__,
                               _peer(conn), why)

    def lost(self, conn: Any) -> None:
        """`conn` is gone: every call pending on it fails with a ConnectionError naming it."""
        for c in [c for c in list(self._pending.values()) if c.conn is conn]:
            c.fail(ConnectionError(f"the connection to {_peer(conn)} was lost before it answered "
                                   f"{c.kind.__name__}"))

    def fail_all(self, error: BaseException) -> None:
        """Every pending call fails with `error` (this process is shutting down)."""
        for c in list(self._pending.values()):
            c.fail(error)

    def pending(self) -> int:
        return len(self._pending)


def read(conn: Any, poll: float | None = None, log: logging.Logger = _log) -> list | None:
    """The next messages from `conn`: blocking until some come (poll None), or those that
    come within `poll` seconds (maybe none); None once it is closed or sent garbage, which
    closes it (its reader then reports the loss)."""
    try:
        return conn.recv_some() if poll is None else conn.poll(poll)
    except (EOFError, OSError):
        return None
    except Exception as e:
        log.warning("unreadable message from %s: %r", _peer(conn), e)
        conn.close()
        return None
