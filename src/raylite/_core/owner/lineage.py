"""Objects lost with a dead node, and lineage reconstruction (pure; part of the owner core).

    task_done, a task with retries left whose outputs went to shared memory ─► each such
        output's entry keeps the task (`Obj.lineage`: its spec, and through its `hold` the
        refs of its arguments, pinned as long as the output lives)
    a node died (the shell's set of dead node tags) ─► lost(dead[, ids]):
        an owned object with a copy on a live node ─► that copy is its location from now on
        every copy on dead nodes:
            its task has retries left ─► the entry waits again (PENDING) and the task runs
                again elsewhere (a retry spent); its arguments lost too are rebuilt first,
                recursively, and it waits for them as for any dependency
            its task is rebuilding it already (another output) ─► it waits with it
            else ─► ObjectReconstructionFailedError (a task's output: no retries left, or its
                arguments were too large to keep), or ObjectLostError (a put() object: only
                the task that makes an object can make it again)
        tasks not pushed yet that were given such an object's old location ─► they wait
            for it again (_hold_back); a task already running with it fails reading it

Ray's rules (fault tolerance of objects): only owned objects are rebuilt, by their
owner; a rebuild spends the task's retries; an object made by put() is lost with its
node. A task whose argument blob went to shared memory (large values passed by value)
keeps no lineage: the blob is freed once it ran. Actor calls keep none either.
"""
from __future__ import annotations

from typing import Any

from ...exceptions import ObjectLostError, ObjectReconstructionFailedError
from .objects import copies_of, located


def keeps_lineage(task: Any, results: tuple) -> bool:
    """Whether a task that just succeeded keeps its spec for its outputs' sake."""
    return (task.retries != 0 and task.actor_id is None and not located(task.msg.args)
            and any(located(d) for d in results))


class Lineage:
    """The owner's rules for objects whose every copy was on a dead node."""

    def __init__(self, owner: Any):
        self.owner = owner
        self.objects = owner.objects
        self.tasks = owner.tasks

    def lost(self, dead: frozenset, ids: Any = None) -> tuple[list, bool]:
        """Nodes `dead` (tags) are gone: the owned objects (all, or `ids`) that had a copy
        there move to another copy, run their task again, or fail. Returns (instructions,
        whether any object changed)."""
        out: list = []
        changed = False
        for id in list(self.objects.entries if ids is None else ids):
            changed = self._check(id, dead, out) or changed
        if changed:
            self._hold_back()
        return out, changed

    def _hold_back(self) -> None:
        """Tasks not pushed yet whose arguments were sent along from a copy that is gone
        (their values inlined before the loss) wait for the rebuild, as for a dependency."""
        tasks, entries = self.tasks, self.objects.entries
        for t in list(tasks.tasks.values()):
            if t.conn is not None or t.actor_id is not None or not t.msg.inlined:
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
        running = task is not None and task.task_id in self.tasks.tasks
        if task is not None and (running or task.retries != 0):
            o.data, o.ready, o.mapped = None, False, None  # waits for the task again
            if not running:
                self._rerun(task, dead, out)
            return True
        h = id.hex()
        if o.task_id is not None:
            why = ("its task has no retries left (raise max_retries to rebuild it)" if task is None
                   else "its task's retries are spent")
            err = ObjectReconstructionFailedError(h, (
                f"Object {h} was lost with its node (every copy was there) and cannot be "
                f"rebuilt: {why}."))
        else:
            err = ObjectLostError(h, (
                f"Object {h} was made by put() and lived only on a node that died; only a "
                "task's output can be rebuilt (return it from a task to make it recoverable)."))
        o.data, o.mapped, o.lineage = None, None, None
        o.error = self.owner.encode_error(err)
        return True

    def _rerun(self, task: Any, dead: frozenset, out: list) -> None:
        """Runs `task` again for its lost outputs, once its lost arguments are rebuilt."""
        tasks, entries = self.tasks, self.objects.entries
        if task.retries > 0:
            task.retries -= 1
        task.attempt += 1
        task.cancelled = False
        tasks.tasks[task.task_id] = task
        self.owner.log.append(("rebuild", task.task_id))
        for rid in task.return_ids:  # its other outputs lost there too wait with it
            self._check(rid, dead, out)
        inlined = dict(task.msg.inlined)
        arg_ids = list(dict.fromkeys((*inlined, *(task.arg_ids or ()))))
        pending = []
        for aid in arg_ids:
            self._check(aid, dead, out)  # lost too: rebuilt first (recursively)
            a = entries.get(aid)
            if a is not None and a.owned and not a.ready:
                inlined.pop(aid, None)
                pending.append(a)
        task.msg = task.msg._replace(inlined=inlined)
        if not pending:
            tasks.requeue(task, out)
            return
        task.lease = task.conn = task.worker = None
        task.arg_ids = arg_ids
        tasks.wait_for(task, pending)
