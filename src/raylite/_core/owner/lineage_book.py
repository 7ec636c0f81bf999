"""The lineage an owner keeps to rebuild lost objects, and its bound (pure; part of the owner core).

    task_done, a task (or actor call) with retries left whose outputs went to shared memory
    on another node than ours (an output on our own node never needs rebuilding by us: we
    die with that node, so a single node keeps no lineage at all)
        ─► keep(task, results): each such output's entry links the task (Obj.lineage); the
           book counts the task's bytes (its pickled arguments, or their blob in shared memory
           when they were large, and the values sent along with it) and its outputs alive;
           its argument blob is not freed when it finishes (drop asks `kept`)
    an output with lineage freed (no refs here, no borrowers) ─► released(task):
        its last output ─► the task is let go: its argument blob freed (a rebuild of it
        running now frees it when it ends), the refs of its arguments dropped with it
    a rebuild that spent the task's last retry ─► let go at once (its outputs: SPENT)
    over max_bytes ─► the oldest kept tasks are let go until under it (their outputs:
        EVICTED): Ray's max_lineage_bytes (RAYLITE_MAX_LINEAGE_BYTES, or Ray's
        RAY_max_lineage_bytes; default 1 GiB, as Ray's)

An output linked to a marker instead of a task is not rebuilt; lineage.py says why in its
ObjectReconstructionFailedError: SPENT, EVICTED, or ACTOR (an actor call without task
retries: Ray rebuilds an actor call's output only when the actor can restart and the
method has max_task_retries != 0).

Unlike Ray's, the bound counts a large by-value argument's blob too: lineage never pins
more shared memory than max_bytes, whatever the arguments.
"""
from __future__ import annotations

from typing import Any

from .objects import located

MAX_LINEAGE_BYTES = 1 << 30     # Ray's default max_lineage_bytes
SPEC_BYTES = 200                # what a kept task costs beyond its arguments (a rough floor)


class Mark:
    """Why an output's lineage is gone (Obj.lineage holds it instead of a task)."""
    __slots__ = ("why",)

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"Mark({self.why!r})"


SPENT = Mark("its task's retries are spent")
EVICTED = Mark("its lineage was evicted: this owner keeps at most max_lineage_bytes of task "
               "specs and by-value arguments to rebuild objects (RAYLITE_MAX_LINEAGE_BYTES, "
               "default 1 GiB), the oldest let go first; raise it, or let go of refs sooner")
ACTOR = Mark("it was made by an actor call, and an actor call's output is rebuilt only when "
             "the actor can restart (max_restarts) and the method has task retries "
             "(max_task_retries != 0)")


def spec_bytes(task: Any) -> int:
    """What keeping `task` for its outputs costs: its argument bytes (or their blob in shared
    memory), the values sent along with it, and a floor for the rest."""
    msg = task.msg
    args = msg.args
    n = args.size if located(args) else len(args) if type(args) is bytes else 0
    for data, _ in (msg.inlined or {}).values():
        if type(data) is bytes:
            n += len(data)
    return n + SPEC_BYTES


class LineageBook:
    """The tasks kept for their outputs' sake, oldest first (call with the shell's lock held)."""

    def __init__(self, objects: Any, tasks: Any, max_bytes: int = MAX_LINEAGE_BYTES):
        self.objects = objects
        self.tasks = tasks           # the TaskTable: its tasks in flight, our node's tag
        self.max_bytes = max_bytes
        self.kept: dict[bytes, list] = {}   # task id -> [task, outputs alive, bytes]
        self.bytes = 0
        self.evicted = 0             # tasks let go to stay under max_bytes, so far

    def keep(self, task: Any, results: tuple) -> bool:
        """`task` succeeded with `results`: links its outputs in shared memory to it while it
        has retries left. True when it is kept (its argument blob must stay)."""
        tid = task.task_id
        if tid in self.kept:         # a rebuild ended: its outputs are linked already
            if task.retries == 0:
                self.let_go(tid, SPENT)
                return False
            return True
        entries, here = self.objects.entries, self.tasks.node
        linked = None
        for rid, data in zip(task.return_ids, results):  # located, on another node than ours
            if data is None or type(data) is bytes or getattr(data, "node", here) == here:
                continue
            o = entries.get(rid)
            if o is not None and o.lineage is None:
                if linked is None:
                    linked = [o]
                else:
                    linked.append(o)
        if linked is None:
            return False
        if task.retries == 0:
            if task.actor_id is not None:  # so that a loss says why it is not rebuilt
                for o in linked:
                    o.lineage = ACTOR
            return False
        for o in linked:
            o.lineage = task
        size = spec_bytes(task)
        self.kept[tid] = [task, len(linked), size]
        self.bytes += size
        while self.bytes > self.max_bytes and self.kept:  # the oldest go first
            self.evicted += 1
            self.let_go(next(iter(self.kept)), EVICTED)
        return tid in self.kept

    def released(self, lineage: Any) -> None:
        """An output linked to `lineage` was freed (ObjectTable.free calls this)."""
        if type(lineage) is Mark:
            return
        k = self.kept.get(lineage.task_id)
        if k is None or k[0] is not lineage:
            return
        k[1] -= 1
        if k[1] <= 0:
            self.let_go(lineage.task_id, None)

    def let_go(self, task_id: bytes, mark: Mark | None) -> None:
        """Stops keeping a task: its outputs still alive say `mark` if lost; its argument blob
        is freed unless it runs now (its drop frees it then); its arguments' refs go."""
        task, _, size = self.kept.pop(task_id)
        self.bytes -= size
        entries = self.objects.entries
        if mark is not None:
            for rid in task.return_ids:
                o = entries.get(rid)
                if o is not None and o.lineage is task:
                    o.lineage = mark
        if self.tasks.tasks.get(task_id) is task:
            return
        args = task.msg.args
        if located(args):
            self.objects.frees.append((args.object_id, True, None, ()))  # on this node
        task.hold = None  # last: dropping refs may free more entries (and come back here)

    def statistics(self) -> tuple:
        """(tasks kept, their bytes, tasks evicted so far)."""
        return len(self.kept), self.bytes, self.evicted
