"""The caller side of actors: calls, their order, restarts and handle lifetimes (pure).

    submit(call) ─► actor DEAD? fails at once with its death
                 ├► connected, nothing queued ─► the actor's outbox (the shell sends it)
                 └► queue ─► (DAEMON, ActorLookup) once ─► resolved(ALIVE, conn) ─► queue to outbox
    connection lost ─► in-flight calls with retries left ─► front of the queue, in submission order
                    │                                     (task ids grow)
                    └ the others ─► `lost` ─┐
    resolved ALIVE (restarted) ─► queue sent; lost calls fail with the death
    resolved DEAD              ─► queue and lost calls fail with the daemon's reason

Calls leave in submission order: the core appends them to the actor's `outbox`
under the shell's lock; the shell pops and sends them in that order under the
actor's own send lock (so a full socket never blocks a thread that holds the
runtime lock).

Handle lifetimes: each live ActorHandle instance in this process counts one.
An actor created here, unnamed and not detached, ends after its pending calls
once its last handle goes, unless a handle was pickled to another process
(`escaped`): `handle_deleted` then queues it in `terminates` (the shell sends
__ray_terminate__ outside any destructor; local mode ends it at once).

Pure: no I/O, no threads, no clock. Errors are opaque (the owner's
encode_error/decode_error turn them into what its runtime stores).
"""
from __future__ import annotations

from collections import deque
from typing import Any

from ...exceptions import (ActorDiedError, ActorUnavailableError, PendingCallsLimitExceeded,
                           RayTaskError)
from ..task_events import FAILED, PENDING_ACTOR
from .instructions import DAEMON, ActorLookup
from .objects import Obj

UNKNOWN_RETRIES = -2   # a handle made elsewhere: the actor's own max_task_retries, once known


class ActorState:
    __slots__ = ("actor_id", "state", "conn", "address", "queue", "resolving", "death", "retries",
                 "outbox", "max_pending", "handles", "collect", "escaped", "lost", "class_name")

    def __init__(self, actor_id: bytes, retries: int = 0):
        self.actor_id = actor_id
        self.state = "UNKNOWN"        # UNKNOWN (ask the daemon) | ALIVE | DEAD
        self.conn: Any = None         # the task connection to its worker, while ALIVE
        self.address: str | None = None
        self.queue: deque = deque()   # calls waiting for an address, in submission order
        self.resolving = False        # a GetActorInfo is outstanding
        self.death: Any = None        # why it died (the error its calls fail with)
        self.retries = retries        # max_task_retries
        self.outbox: deque = deque()  # (connection, message) for the shell to send, in order
        self.max_pending = -1
        self.handles = 0              # live ActorHandle instances in this process
        self.collect = False          # created here, unnamed, not detached: ends with its handles
        self.escaped = False          # a handle was pickled to another process
        self.lost: list = []          # in flight when the connection dropped, no retries left
        self.class_name = ""


def named_actor_missing(name: str, namespace: str) -> ValueError:
    return ValueError(f"Failed to look up actor {name!r} in namespace {namespace!r}: no live actor "
                      "has that name there. Check the name and namespace.")


class ActorTable:
    """The actors this process calls (call with the shell's lock held)."""

    def __init__(self, owner: Any):
        self.owner = owner
        self.objects = owner.objects
        self.tasks = owner.tasks
        self.log = owner.log
        self.events = owner.events
        self.actors: dict[bytes, ActorState] = {}
        self.reqs: dict[int, bytes] = {}           # GetActorInfo request -> actor id
        self.terminates: list[bytes] = []          # actors whose last handle went

    # -- lifecycle -------------------------------------------------------------
    def created(self, actor_id: bytes, retries: int, max_pending: int, collect: bool,
                class_name: str = "") -> ActorState:
        """An actor this process created (or found by get_if_exists)."""
        st = self.actors.get(actor_id)
        if st is None:
            st = self.actors[actor_id] = ActorState(actor_id, retries)
            st.max_pending, st.collect, st.class_name = max_pending, collect, class_name
            self.log.append(("actor", actor_id))
        return st

    def get(self, actor_id: bytes) -> ActorState:
        st = self.actors.get(actor_id)
        if st is None:
            st = self.actors[actor_id] = ActorState(actor_id, UNKNOWN_RETRIES)
        return st

    def death_error(self, actor_id: bytes, death: Any) -> Any:
        """What calls to a dead actor fail with, from the daemon's (or runtime's) `death`."""
        owner = self.owner
        if death is None:
            return owner.encode_error(ActorDiedError(
                f"Actor {actor_id.hex()} is unknown to the cluster: it was never created here, "
                "or its cluster was restarted.", actor_id.hex()))
        err = owner.decode_error(death)
        if isinstance(err, RayTaskError):  # its __init__ raised
            st = self.actors.get(actor_id)
            name = f" {st.class_name}" if st is not None and st.class_name else ""
            return owner.encode_error(ActorDiedError(
                f"The actor{name} died because its __init__ raised:\n{err}", actor_id.hex(),
                err.cause))
        return death

    def lost_call_error(self, actor_id: bytes, task: Any, death: Any) -> Any:
        """For a call the actor was running when its process went away and that is not
        retried; `death` is why its last incarnation ended (kept while it restarts)."""
        owner = self.owner
        why = f"{owner.decode_error(death)} " if death is not None else \
            "The connection to the actor was lost. "
        return owner.encode_error(ActorDiedError(
            f"{why}This call ({task.name}) was running then and is not retried (set "
            "max_task_retries to retry calls when an actor restarts).", actor_id.hex()))

    # -- calls -----------------------------------------------------------------
    def submit(self, task: Any, retries: int | None) -> list:
        """A new call (`retries`: its max_task_retries option, None for the actor's)."""
        actor_id = task.actor_id
        st = self.actors.get(actor_id)
        if st is None:
            st = self.actors[actor_id] = ActorState(actor_id, UNKNOWN_RETRIES)
        tasks = self.tasks.tasks
        if st.max_pending >= 0:
            pending = sum(1 for t in tasks.values() if t.actor_id == actor_id)
            if pending >= st.max_pending:
                raise PendingCallsLimitExceeded(
                    f"Actor {actor_id.hex()} already has {pending} pending calls "
                    f"(max_pending_calls={st.max_pending}); wait for some results first.")
        task.retries = self.retries_for(st, retries)
        tid = task.task_id
        self.log.append(("call", tid))
        entries = self.objects.entries
        for rid in task.return_ids:
            entries[rid] = Obj(True, None, None, tid)
        if task.events:  # noted once the shell has sent it (events.later)
            self.events.later(task, PENDING_ACTOR, st.class_name)
        if st.state == "DEAD":
            if task.events and st.death is not None:
                self.events.ended(task, st.death)
            for rid in task.return_ids:
                o = entries[rid]
                o.error, o.ready = st.death, True
            return []
        tasks[tid] = task
        if st.conn is not None and not st.queue:
            self.to_actor(st, task)
            return []
        st.queue.append(task)
        out: list = []
        self.resolve(st, out)
        return out

    @staticmethod
    def retries_for(st: ActorState, retries: int | None) -> int:
        """A call's max_task_retries: its own option, else the actor's."""
        return retries if retries is not None else st.retries

    def to_actor(self, st: ActorState, task: Any) -> None:
        """Queues one call in the outbox of a connected actor."""
        conn = task.conn = st.conn
        task.worker = st.address
        inflight = self.tasks.inflight
        s = inflight.get(conn)
        if s is None:
            s = inflight[conn] = set()
        s.add(task.task_id)
        msg = task.msg
        if task.attempt:
            msg = msg._replace(attempt=task.attempt)
        st.outbox.append((conn, msg))

    def resolve(self, st: ActorState, out: list) -> None:
        """Asks the daemon where the actor lives, once."""
        if st.resolving:
            return
        st.resolving = True
        owner = self.owner
        req = next(owner.reqs)
        self.reqs[req] = st.actor_id
        out.append((DAEMON, ActorLookup(req, st.actor_id)))

    def resolved(self, req: int, state: str, address: str | None, death: Any,
                 max_task_retries: int, conn: Any) -> list:
        """The daemon's answer to resolve(); `conn` is the shell's task connection to the actor
        when it is ALIVE (None when it could not connect: it is going down, ask again)."""
        actor_id = self.reqs.pop(req)
        st = self.actors[actor_id]
        st.resolving = False
        self.log.append(("resolved", actor_id, state))
        if st.retries == UNKNOWN_RETRIES:  # a handle made elsewhere: take the actor's own setting
            st.retries = max_task_retries
            for t in st.queue:
                if t.retries == UNKNOWN_RETRIES:
                    t.retries = max_task_retries
        out: list = []
        failed: list = []
        if state == "ALIVE" and conn is not None:
            st.state, st.conn, st.address = "ALIVE", conn, address
            failed = [(t, self.lost_call_error(actor_id, t, death)) for t in st.lost]
            while st.queue:
                self.to_actor(st, st.queue.popleft())
        elif state == "ALIVE":
            self.resolve(st, out)
        else:
            st.state, st.death = "DEAD", self.death_error(actor_id, death)
            rebuilt = self.owner.lineage.rebuild_error  # a rebuild's outputs say so
            failed = [(t, rebuilt(t, st.death)) for t in (*st.lost, *st.queue)]
            st.queue.clear()
        if failed:
            st.lost = []
            complete, tasks = self.owner.complete, self.tasks
            for t, err in failed:
                if t.task_id in tasks.tasks:  # not cancelled meanwhile
                    tasks.drop(t.task_id)
                    if t.events and err is not None:
                        self.events.ended(t, err)
                    for rid in t.return_ids:
                        complete(rid, None, err, True, out)
        return out

    def requeue(self, st: ActorState, tasks: list, out: list) -> None:
        """Puts calls sent before back in the actor's queue, keeping it in submission order
        (a process's task ids grow with it), and asks where the actor is."""
        for t in tasks:
            t.lease = t.conn = t.worker = None
            if t.events:
                self.events.new(t, PENDING_ACTOR, st.class_name)
        if not st.queue or tasks[-1].task_id < st.queue[0].task_id:
            st.queue.extendleft(reversed(tasks))
        else:  # calls retried at different times: merge
            merged = sorted((*st.queue, *tasks), key=lambda t: t.task_id)
            st.queue.clear()
            st.queue.extend(merged)
        self.resolve(st, out)

    def conn_lost(self, conn: Any, calls: list, out: list, node_died: str = "") -> None:
        """`conn` dropped with these calls in flight (in submission order, none cancelled).
        Every actor it served asks the daemon what became of it; calls with retries left wait
        in its queue, the others in its `lost` list, for that answer (resolved). When the
        actor's node died (`node_died` says how) those others fail at once with
        ActorUnavailableError: nobody can tell whether they ran."""
        by_actor: dict[bytes, list] = {}
        for t in calls:
            by_actor.setdefault(t.actor_id, []).append(t)
        for st in self.actors.values():  # an idle actor's next call must not go to a dead socket
            if st.conn is conn:
                st.conn, st.state = None, "UNKNOWN"
        for actor_id, tasks in by_actor.items():
            st = self.actors[actor_id]
            retry = []
            for t in tasks:
                if t.retries != 0:
                    if t.retries > 0:
                        t.retries -= 1
                    t.attempt += 1
                    if t.events:
                        self.events.add(t.task_id, t.attempt - 1, FAILED, (
                            "ACTOR_DIED", "The actor's process went away; the call is retried."))
                    retry.append(t)
                elif node_died:
                    self.unavailable(st, t, node_died, out)
                else:
                    t.lease = t.conn = t.worker = None
                    st.lost.append(t)
            if retry:
                self.requeue(st, retry, out)
            else:
                self.resolve(st, out)

    def unavailable(self, st: ActorState, t: Any, node_died: str, out: list) -> None:
        owner = self.owner
        name = st.class_name or st.actor_id.hex()
        err = owner.encode_error(ActorUnavailableError(
            f"The actor {name} was running {t.name} when its node {node_died}: the call may "
            "or may not have run, and is not retried (set max_task_retries to retry calls).",
            st.actor_id.hex()))
        self.tasks.drop(t.task_id)
        if t.events:
            self.events.ended(t, err)
        for rid in t.return_ids:
            owner.complete(rid, None, err, True, out)

    def killed(self, actor_id: bytes) -> None:
        """ray.kill() was sent: the next call asks the daemon where the actor is."""
        st = self.actors.get(actor_id)
        if st is not None and st.state == "ALIVE":
            st.conn, st.state = None, "UNKNOWN"

    def died(self, actor_id: bytes, death: Any) -> None:
        """The actor is dead for good (local mode says so itself)."""
        st = self.get(actor_id)
        st.state, st.death, st.conn = "DEAD", death, None

    def forget_queued(self) -> None:
        """The daemon is gone: no call waiting for an address will get one."""
        for st in self.actors.values():
            st.queue.clear()
            st.resolving = False
        self.reqs.clear()

    def unqueue(self, task: Any) -> bool:
        st = self.actors.get(task.actor_id)
        if st is not None and task in st.queue:
            st.queue.remove(task)
            return True
        return False

    # -- handles ---------------------------------------------------------------
    def handle_created(self, actor_id: bytes) -> None:
        self.get(actor_id).handles += 1

    def handle_deleted(self, actor_id: bytes) -> bool:
        """True when this was the last handle of an actor that ends with its handles (it is
        queued in `terminates`)."""
        st = self.actors.get(actor_id)
        if st is None:
            return False
        st.handles -= 1
        if st.handles <= 0 and st.collect and not st.escaped and st.state != "DEAD":
            st.collect = False
            self.terminates.append(actor_id)
            self.log.append(("unreferenced", actor_id))
            return True
        return False

    def handle_escaped(self, actor_id: bytes) -> None:
        st = self.actors.get(actor_id)
        if st is not None:
            st.escaped = True

    def take_terminates(self) -> list:
        ids, self.terminates = self.terminates, []
        return ids
