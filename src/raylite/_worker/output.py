"""A worker's output: kept in its own files, and sent to the driver of the job it serves.

    fd 1 / fd 2 ─► a pipe each ─► _pump thread (one per pipe, as before):
        bytes ─► WorkerLog: <session>/logs/worker-<worker id>-<pid>.out / .err, made on the
                 first byte (a worker that prints nothing leaves no file), rotated by size
                 at RAYLITE_ROTATION_MAX_BYTES (RAYLITE_ROTATION_BACKUP_COUNT kept: .1 .. .N)
        whole lines, while it serves a job ─► LogLines ─► node daemon ─► the job's driver

The files outlive the worker and the cluster (the daemon keeps the session's logs/ when
it stops: _node/main.py), so `raylite logs` and util.state.get_log read them after the
task ended. Written raw, as the task printed them; a line the pipe has not finished yet
is in the file already and reaches the driver when its newline comes.

Which task wrote what (get_log(task_id=...), util/state/task_logs.py): sys.stdout and
sys.stderr are MarkedText, and the executor tells them (TaskMarks) which task runs. A
task's first write to a stream puts a marker line before its text, and the task's end
another after it, so the file reads

    :raylite_task_begin:<task id hex>:<attempt>
    ...what the task printed...
    :raylite_task_end:<task id hex>:<attempt>

A task that prints nothing writes no marker (its cost: two attribute stores and a check,
~0.4 µs). A marker waits in the stream's byte buffer and goes out with the next write (or
the flush at exit), so marking adds no pipe write and no wakeup of the pump; until the
end marker comes,
a reader takes the next task's begin marker, or the end of the file once the task ended,
as its end. The markers never reach the driver (_pump drops them). Output that bypasses
sys.stdout (os.write(1), a child process, C code) between a task's markers counts as the
task's; before its first Python write, as no task's.

Calls of an actor that runs several at once (max_concurrency > 1, async) interleave, so the
streams are shared (TaskMarks.share, once the actor is hosted) and each write is the call's
that runs where it is made: a thread-pool call is noted by its thread's id (TaskMarks.calls),
an async call in CALL, a contextvar set in its own asyncio task (the tasks it makes copy
its context, so their writes are the call's too; the task's context ends with it). A
call's text waits in its own partial line until a newline; whole lines go out, preceded
by the begin marker of their call whenever the stream's last writer was another one (a
call's lines may come in several runs, each after its begin marker), and the call's end
leaves its rest of a line and its end marker. Output from no call (a thread the user
started) is preceded by the begin marker of no task (NO_CALL). A call that prints nothing
costs a dict store and delete (a thread's) or a contextvar set (an async call's), and a
check (benchmarks/call_marks_bench.py; figures in docs/performance.md).
"""
from __future__ import annotations

import contextvars
import io
import os
import threading
from typing import Any

from .. import _private_files as private
from .._protocol import messages as m


class WorkerLog:
    """One of the worker's files, bounded: at most 1 + backup_count files of max_bytes."""

    def __init__(self, path: str, max_bytes: int, backup_count: int):
        self.path, self.max_bytes, self.backup_count = path, max_bytes, backup_count
        self._fd: int | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        try:
            if self._fd is None:
                private.make_dir(os.path.dirname(self.path))
                self._fd = private.open_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                self._size = os.fstat(self._fd).st_size
            elif self._size and self._size + len(data) > self.max_bytes:
                os.close(self._fd)
                self._fd, self._size = None, 0
                self._fd = private.rotate(self.path, self.backup_count)
            os.write(self._fd, data)
            self._size += len(data)
        except (OSError, private.NotPrivateError):
            pass  # a full disk or a removed session dir: the driver still gets the output


BEGIN, END = b":raylite_task_begin:", b":raylite_task_end:"
NO_CALL = BEGIN + b"-:-\n"   # what follows is no call's (shared streams)
LABELS: dict = {}   # task id hex -> the name its lines are shown with (tasks that printed)
CALL: contextvars.ContextVar = contextvars.ContextVar("raylite_call", default=None)
_ident = threading.get_ident


class MarkedText(io.TextIOWrapper):
    """sys.stdout / sys.stderr of a worker: writes a task's begin marker before its first
    write, and (TaskMarks.end) its end marker after its last."""
    task: tuple | None = None  # (task id, attempt, its label or None) of the task running
    marked = False             # the begin marker of `task` is written
    open_line = False          # the last write did not end its line
    shared = False             # calls run at once: each write is its CALL's (_write_shared)

    def write(self, s: str) -> int:
        if self.shared:
            return _write_shared(self, s)
        if not self.marked and self.task is not None and s:
            self.marked = True
            _marker(self, BEGIN, self.task)  # goes out with s: no pipe write of its own
        if s:
            self.open_line = s[-1] != "\n"
        return super().write(s)


class TaskMarks:
    """What the executor calls around a task it runs in its own thread (run_task, an actor's
    calls one at a time): begin() notes the task (a quiet task costs this and end()'s
    check, about a microsecond); the streams write the markers only if it prints."""
    __slots__ = ("streams", "calls", "wrote")

    def __init__(self, streams: tuple):
        self.streams = streams
        self.calls: dict = {}     # shared streams: thread id -> the call it runs
        self.wrote: set = set()   # ids of the calls running that wrote to a shared stream

    def begin(self, task_id: bytes, attempt: int, label: str | None = None) -> None:
        """`label`: the name the task's lines go to the driver with (None: the worker's
        current name, an actor's class)."""
        out, err = self.streams
        out.task = err.task = (task_id, attempt, label)

    def end(self) -> None:
        out, err = self.streams
        if out.marked or err.marked:
            for s in self.streams:
                if s.marked:
                    s.marked = False
                    _marker(s, END, s.task)
        out.task = err.task = None

    def share(self) -> None:
        """From now on calls run at once: each write is its call's, marked per run."""
        self.calls, self.wrote = {}, set()
        for s in self.streams:
            s.lock, s.partial, s.began, s.writer = threading.RLock(), {}, set(), None
            s.marks, s.shared = self, True

    def enter_thread(self, call: Any) -> None:
        """`call` (with task_id and attempt: its PushActorTask) runs in this pool thread."""
        self.calls[_ident()] = call

    def leave_thread(self, call: Any) -> None:
        del self.calls[_ident()]
        if self.wrote:  # some call wrote and has not ended: this one?
            self._ended(call)

    @staticmethod
    def enter_task(call: Any) -> None:
        """`call` runs in this asyncio task, and in the tasks it makes (they copy its
        context); the task's context ends with it, so nothing needs resetting."""
        CALL.set(call)

    def leave_task(self, call: Any) -> None:
        if self.wrote:
            self._ended(call)

    def _ended(self, call: Any) -> None:
        if id(call) in self.wrote:
            self.wrote.discard(id(call))
            for s in self.streams:
                _end_shared(s, call)


def _write_shared(s: MarkedText, text: str) -> int:
    """A write to a shared stream: its call's whole lines go out after its marker; the
    rest of a line waits in the call's own partial line. No call: written through."""
    if not text:
        return 0
    call = CALL.get()
    if call is None:
        call = s.marks.calls.get(_ident())
    with s.lock:
        if call is None:
            _switch(s, None)
            s.open_line = text[-1] != "\n"
            return io.TextIOWrapper.write(s, text)
        key = id(call)
        s.marks.wrote.add(key)
        whole = s.partial.pop(key, "") + text
        head, nl, rest = whole.rpartition("\n")
        if rest:
            s.partial[key] = rest
        if nl:
            _switch(s, call)
            io.TextIOWrapper.write(s, head + nl)
        return len(text)


def _switch(s: MarkedText, call: Any) -> None:
    """The marker of `call` (None: no call) unless it was the stream's last writer."""
    if s.writer is not call:
        s.writer = call
        if call is None:
            _put(s, NO_CALL)
        else:
            s.began.add(id(call))
            _put(s, BEGIN + f"{call.task_id.hex()}:{call.attempt}\n".encode())


def _end_shared(s: MarkedText, call: Any) -> None:
    """The call ended: its rest of a line (ended), then its end marker."""
    key = id(call)
    with s.lock:
        rest = s.partial.pop(key, None)
        if rest is not None:
            _switch(s, call)
            io.TextIOWrapper.write(s, rest + "\n")
        if key in s.began:
            s.began.discard(key)
            _put(s, END + f"{call.task_id.hex()}:{call.attempt}\n".encode())
            if s.writer is call:
                s.writer = None


def _marker(s: MarkedText, kind: bytes, task: tuple) -> None:
    h = task[0].hex()
    if kind is BEGIN and task[2] is not None:  # its lines' label, for _pump (which may read
        if len(LABELS) > 1024:                  # them after the next task began)
            LABELS.clear()
        LABELS[h] = task[2]
    _put(s, kind + f"{h}:{task[1]}\n".encode())


def _put(s: MarkedText, marker: bytes) -> None:
    """A marker line, left in s's byte buffer (not flushed) when s's last write ended its
    line (line buffering flushed the text layer then, so the order holds): it goes out
    with the stream's next write, or the flush at the worker's exit. After an unfinished
    line: written (and flushed) through the text layer, after a newline."""
    try:
        if s.open_line:
            super(MarkedText, s).write("\n" + marker.decode())
            s.open_line = False
        else:
            s.buffer.write(marker)
    except (OSError, ValueError):
        pass


def forward_output(rt, executor, session_dir: str, worker_id: bytes) -> None:
    """Points fd 1 and 2 at pipes whose bytes go to the worker's files and whose lines go to
    the job's driver, prefixed as Ray does."""
    import sys

    from .._config import from_env

    try:
        cfg = from_env()
        max_bytes, backups = cfg.rotation_max_bytes, cfg.rotation_backup_count
    except ValueError:  # the daemon said why at its start; the defaults hold here
        from .._config import ROTATION_BACKUP_COUNT, ROTATION_MAX_BYTES
        max_bytes, backups = ROTATION_MAX_BYTES, ROTATION_BACKUP_COUNT
    base = os.path.join(session_dir, "logs", f"worker-{worker_id.hex()}-{os.getpid()}")
    for fd, is_err in ((1, False), (2, True)):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        log = WorkerLog(base + (".err" if is_err else ".out"), max_bytes, backups)
        threading.Thread(target=_pump, args=(rt, executor, r, is_err, log), daemon=True,
                         name="raylite-log").start()
    sys.stdout, sys.stderr = (MarkedText(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)),
                                         line_buffering=True) for fd in (1, 2))
    sys.stdout.mode = sys.stderr.mode = "w"  # as os.fdopen(fd, "w", buffering=1) had it
    executor.marks = TaskMarks((sys.stdout, sys.stderr))


def _pump(rt, executor, fd: int, is_err: bool, log: WorkerLog) -> None:
    with os.fdopen(fd, "rb", buffering=0) as f:
        pending = b""
        state: list = [None]  # the label of the task whose lines come now (_labelled)
        while True:
            chunk = f.read(65536)
            if not chunk:
                return
            log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if not lines or not executor.job_id:
                continue
            for label, group in _labelled(lines, executor, state):
                prefix = f"({label} pid={os.getpid()})"
                text = tuple(x.decode("utf-8", "replace") for x in group)
                try:
                    rt.send_daemon(m.LogLines(executor.job_id, prefix, text, is_err))
                except OSError:
                    return


def _labelled(lines: list, executor: Any, state: list) -> list:
    """(label, lines) runs of whole lines, markers dropped: a line is labelled with the name
    of the task whose begin marker came before it in the stream (LABELS), so lines read
    after the next task began still go out under their own task's name; other lines (an
    actor's, output between tasks) with the worker's current name. `state`: [the label in
    force], kept across reads."""
    out: list = []
    for x in lines:
        if x.startswith(BEGIN):
            state[0] = LABELS.get(x[len(BEGIN):].partition(b":")[0].decode("ascii", "replace"))
            continue
        if x.startswith(END):
            state[0] = None
            continue
        label = state[0] or executor.current_name
        if out and out[-1][0] == label:
            out[-1][1].append(x)
        else:
            out.append((label, [x]))
    return out
