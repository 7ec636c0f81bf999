"""Objects lost with a dead node, and lineage reconstruction (pure; part of the owner core).

    task_done, a task or actor call with retries left whose outputs went to shared memory
        ─► the book (lineage_book.py) keeps it for them: its spec, its by-value argument blob
           and (through its `hold`) its arguments' refs, until its last such output is freed
           or the owner's lineage outgrows max_lineage_bytes (the oldest let go first)
    a node died (the shell's set of dead node tags) ─► lost(dead[, ids]):
        an owned object with a copy on a live node ─► that copy is its location from now on
        every copy on dead nodes:
            its task has retries left ─► the entry waits again (PENDING) and the task runs
                again elsewhere (a retry spent); its arguments lost too are rebuilt first,
                recursively, and it waits for them as for any dependency; an actor call goes
                back to its actor's queue (the restarted actor runs it; a dead one fails it
                with ObjectReconstructionFailedError naming the death: rebuild_error)
            its task is rebuilding it already (another output) ─► it waits with it
            else ─► ObjectReconstructionFailedError (a task's output: no retries left, spent,
                lineage evicted, or an actor call without max_task_retries), or
                ObjectLostError (a put() object: only a task can make an object again)
        tasks not pushed yet that were given such an object's old location ─► they wait
            for it again (_hold_back)
    a task failed reading an argument in shared memory (ObjectLostError naming it: its node
    died while the worker read it) ─► arg_lost: a system failure, as Ray's: retried within
        max_retries (retry_exceptions or not; an actor call whose worker says the method never
        ran goes again without spending one) once the argument is back: rebuilding already
        ─► it waits for it; on a node known dead ─► rebuilt now (a borrowed one: left out of
        what we send, its worker asks its owner), and it waits; its copy moved ─► it runs
        again with the new one; else parked until the node is declared dead (lost() wakes
        it) or `expire` gives up on it (it fails with the read's error)

Ray's rules (fault tolerance of objects): only owned objects are rebuilt, by their
owner; a rebuild spends the task's retries; an object made by put() is lost with its
node; an actor call's output only when the method has max_task_retries != 0 (and the
actor can restart: a dead actor fails the rebuild).
"""
from __future__ import annotations

from typing import Any

from ...exceptions import (ObjectFreedError, ObjectLostError, ObjectReconstructionFailedError,
                           OwnerDiedError, ReferenceCountingAssertionError)

NOT_A_LOSS = (OwnerDiedError, ObjectReconstructionFailedError, ObjectFreedError,
              ReferenceCountingAssertionError)  # ObjectLostErrors a rerun cannot mend
from ..task_events import PENDING_ARGS
from .lineage_book import MAX_LINEAGE_BYTES, LineageBook, Mark
from .objects import copies_of, located


class Lineage:
    """The owner's rules for objects whose every copy was on a dead node."""

    def __init__(self, owner: Any, max_bytes: int = MAX_LINEAGE_BYTES):
        self.owner = owner
        self.objects = owner.objects
        self.tasks = owner.tasks
        self.book = LineageBook(owner.objects, owner.tasks, max_bytes)
        self.objects.released = self.book.released
        self.dead: frozenset = frozenset()   # the dead nodes' tags, as the shell last said
        self.parked: dict[bytes, tuple] = {}  # task id -> (task, argument id, the location
                                              # it was sent, since, error): waiting for NodeDied
        self.rebuilding: set[bytes] = set()   # actor calls run again for lost outputs

    def lost(self, dead: frozenset, ids: Any = None) -> tuple[list, bool]:
        """Nodes `dead` (tags) are gone: the owned objects (all, or `ids`) that had a copy
        there move to another copy, run their task again, or fail. Returns (instructions,
        whether any object changed)."""
        self.dead = dead
        out: list = []
        changed = False
        for id in list(self.objects.entries if ids is None else ids):
            changed = self._check(id, dead, out) or changed
        if self.parked:
            changed = self._unpark(out) or changed
        if changed:
            self._hold_back()
        return out, changed

    def _hold_back(self) -> None:
        """Tasks not pushed yet whose arguments were sent along from a copy that is gone
        (their values inlined before the loss) wait for the rebuild, as for a dependency."""
        tasks, entries = self.tasks, self.objects.entries
        for t in list(tasks.tasks.values()):
            if t.conn is not None or t.actor_id is not None or not t.msg.inlined \
                    or t.task_id in self.parked:
                continue
            stale = [entries[i] for i in t.msg.inlined
                     if i in entries and entries[i].owned and not entries[i].ready]
            if not stale:
                continue
            gone = {i for i in t.msg.inlined if i in entries and entries[i] in stale}
            t.msg = t.msg._replace(inlined={i: v for i, v in t.msg.inlined.items()
                                            if i not in gone})
            t.arg_ids = list(dict.fromkeys((*(t.arg_ids or ()), *gone)))
            queued = tasks.unqueue(t)
            deps = 0 if queued else t.deps  # waiting for others already: for these too
            tasks.wait_for(t, stale)
            t.deps += deps

    def _check(self, id: bytes, dead: frozenset, out: list) -> bool:
        o = self.objects.entries.get(id)
        if o is None or not o.owned or not o.ready or o.error is not None or not located(o.data):
            return False
        every = copies_of(o)
        live = [(node, at) for node, at in every if node not in dead]
        if len(live) == len(every):
            return False
        self.owner.log.append(("lost_copies", id, len(every) - len(live)))
        if live:  # another node holds a copy: read from there from now on
            (node, at), rest = live[0], live[1:]
            if node != o.data.node:
                o.data = o.data._replace(node=node, at=at)
            o.copies = dict(rest) or None
            return True
        o.copies = None
        task = o.lineage
        if task is not None and type(task) is not Mark:
            running = task.task_id in self.tasks.tasks
            if running or task.retries != 0:
                o.data, o.ready, o.mapped = None, False, None  # waits for the task again
                if not running:
                    self._rerun(task, dead, out)
                return True
        h = id.hex()
        if o.task_id is not None:
            if type(task) is Mark:
                why = task.why
            elif task is None:
                why = "its task has no retries left (raise max_retries to rebuild it)"
            else:
                why = "its actor call's retries (max_task_retries) are spent" \
                    if task.actor_id is not None else "its task's retries are spent"
            err = ObjectReconstructionFailedError(h, (
                f"Object {h} was lost with its node (every copy was there) and cannot be "
                f"rebuilt: {why}."))
        else:
            err = ObjectLostError(h, (
                f"Object {h} was made by put() and lived only on a node that died; only a "
                "task's output can be rebuilt (return it from a task to make it recoverable)."))
        if o.lineage is not None and type(o.lineage) is not Mark:
            self.book.released(o.lineage)  # nothing of it to rebuild any more
        o.data, o.mapped, o.lineage = None, None, None
        o.error = self.owner.encode_error(err)
        return True

    def _rerun(self, task: Any, dead: frozenset, out: list) -> None:
        """Runs `task` again for its lost outputs, once its lost arguments are rebuilt."""
        if task.retries > 0:
            task.retries -= 1
        task.attempt += 1
        task.cancelled = False
        self.tasks.tasks[task.task_id] = task
        self.owner.log.append(("rebuild", task.task_id))
        for rid in task.return_ids:  # its other outputs lost there too wait with it
            self._check(rid, dead, out)
        if task.actor_id is not None:
            self.rebuilding.add(task.task_id)
        self._go(task, out)

    def _go(self, task: Any, out: list) -> None:
        """Sends `task` (again) with fresh values of its owned arguments; those lost with a
        dead node are rebuilt first and it waits for them (an actor call does not wait: its
        actor reads what is missing from us, and we answer once it is back)."""
        tasks, entries = self.tasks, self.objects.entries
        inlined = dict(task.msg.inlined)
        arg_ids = list(dict.fromkeys((*inlined, *(task.arg_ids or ()))))
        pending = []
        for aid in arg_ids:
            self._check(aid, self.dead, out)  # lost too: rebuilt first (recursively)
            a = entries.get(aid)
            if a is None or not a.owned:  # borrowed, its old place dead: its worker asks
                if getattr(inlined.get(aid, (None,))[0], "node", None) in self.dead:  # its owner
                    inlined.pop(aid)
                continue
            if a.ready:
                inlined[aid] = (a.data, a.error)
                a.shared = True
            else:
                inlined.pop(aid, None)
                pending.append(a)
        task.msg = task.msg._replace(inlined=inlined)
        task.lease = task.conn = task.worker = None
        if task.actor_id is not None:
            self.owner.resubmit(task, out)
        elif not pending:
            tasks.requeue(task, out)
        else:
            task.arg_ids = arg_ids
            if task.events:  # its new attempt opens as submit() opens one that waits
                self.owner.events.new(task, PENDING_ARGS)
            tasks.wait_for(task, pending)

    def rebuild_error(self, task: Any, error: Any) -> Any:
        """What an actor call run again for lost outputs fails with when its actor is dead
        for good (`error`: the actor's death)."""
        if task.task_id not in self.rebuilding:
            return error
        self.rebuilding.discard(task.task_id)
        h = task.return_ids[0].hex()
        death = str(self.owner.decode_error(error)).partition("\n")[0]
        return self.owner.encode_error(ObjectReconstructionFailedError(h, (
            f"Object {h} was lost with its node and cannot be rebuilt: its actor call "
            f"({task.name}) was to run again, but the actor is dead and cannot restart "
            f"(raise max_restarts): {death}")))

    # -- a task that could not read an argument ----------------------------------
    def arg_lost(self, task: Any, error: Any, now: float, out: list) -> bool:
        """`task` failed with `error`: when that is an argument in shared memory it could not
        read (ObjectLostError naming it) and the task has retries left, it is a system failure:
        a retry is spent and the task runs again once the argument is back (True). An owned
        one we rebuild; a borrowed one is left out of what we send, so that its worker asks
        its owner, who rebuilds it. An actor call goes again whatever its max_task_retries,
        spending none, when its worker says the method never ran (`unread_argument`): in Ray
        such a call waits for its argument's rebuild."""
        actor = task.actor_id is not None
        if (task.retries == 0 and not actor) or task.cancelled \
                or not (task.msg.inlined or task.arg_ids):  # no ref arguments: not decoded
            return False
        err = self.owner.decode_error(error)
        cause = getattr(err, "cause", err)
        if not isinstance(cause, ObjectLostError) or isinstance(cause, NOT_A_LOSS):
            return False
        if actor and not getattr(cause, "unread_argument", False):
            return False  # maybe raised by the method itself: an actor call is not run twice
        try:
            aid = bytes.fromhex(cause.object_ref_hex)
        except (TypeError, ValueError):
            return False
        a = self.objects.entries.get(aid)
        msg = task.msg
        if aid not in msg.inlined and aid not in (task.arg_ids or ()):
            return False
        sent = msg.inlined.get(aid, (None, None))[0]
        if not (located(a.data) if a is not None and a.owned and a.ready else
                a is not None and a.owned or located(sent)):
            return False  # only what lives in shared memory lives on a node
        if task.retries > 0 and not actor:
            task.retries -= 1
        task.attempt += 1
        self.owner.log.append(("arg_lost", task.task_id, aid))
        if task.events:
            self.owner.events.ended(task, error, task.attempt - 1)
        task.lease = task.conn = task.worker = None
        if self._unchanged(aid, sent):
            self.parked[task.task_id] = (task, aid, sent, now, error)  # NodeDied will come
            return True
        self._go(task, out)
        return True

    def _unchanged(self, aid: bytes, sent: Any) -> bool:
        """Whether argument `aid` still looks as it did when its task was sent `sent`: its
        node not known dead, and (owned) its entry still ready there; a borrowed one's owner
        rebuilds it, we only learn that its node died."""
        if getattr(sent, "node", None) in self.dead:
            return False
        a = self.objects.entries.get(aid)
        if a is None or not a.owned:
            return True
        return a.ready and a.error is None and a.data == sent

    def _unpark(self, out: list) -> bool:
        """Parked tasks whose argument changed (rebuilding, moved, failed) go again."""
        woke = False
        for tid, (task, aid, sent, _, _) in list(self.parked.items()):
            if self._unchanged(aid, sent):
                continue
            del self.parked[tid]
            if self.tasks.tasks.get(tid) is task:
                self._go(task, out)
                woke = True
        return woke

    def expire(self, now: float, after: float) -> list:
        """Parked tasks whose argument's node was not declared dead within `after` seconds
        fail with the error of their read (the shell calls this on its maintenance tick)."""
        out: list = []
        for tid, (task, _, _, since, error) in list(self.parked.items()):
            if now - since < after:
                continue
            del self.parked[tid]
            if self.tasks.tasks.get(tid) is task:
                self.tasks.drop(tid)
                self.owner.fail(task, error, out)
        return out
