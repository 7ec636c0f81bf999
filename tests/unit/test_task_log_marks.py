"""A worker's task markers (_worker/output.py) and finding one task's lines with them
(util/state/task_logs.py), without a cluster: a stream over a pipe, files in a temp dir."""
import io
import os

import pytest

from raylite._worker.output import MarkedText, TaskMarks
from raylite.util.state.common import RayStateApiException
from raylite.util.state.task_logs import task_lines, worker_files

TID = "ab" * 16


def _stream():
    r, w = os.pipe()
    s = MarkedText(io.BufferedWriter(io.FileIO(w, "w", closefd=True)), line_buffering=True)
    return s, r


def _drain(s, r) -> str:
    s.close()
    with os.fdopen(r, "rb") as f:
        return f.read().decode()


def _run(body) -> str:
    """What `body(stdout, marks)` leaves in a worker's stdout (its stderr must stay empty)."""
    (out, r), (err, r2) = _stream(), _stream()
    body(out, TaskMarks((out, err)))
    assert _drain(err, r2) == ""                   # nothing printed there: no marker either
    return _drain(out, r)


def test_a_task_that_prints_gets_markers_and_a_quiet_one_none():
    def body(s, marks):
        s.write("before any task\n")
        marks.begin(bytes.fromhex(TID), 0)
        marks.end()                                # printed nothing: no marker
        marks.begin(bytes.fromhex(TID), 1)
        print("one", file=s)
        print("two", end="", file=s)               # the end marker starts a line of its own
        marks.end()
        s.write("after\n")
    assert _run(body) == (f"before any task\n:raylite_task_begin:{TID}:1\none\ntwo\n"
                          f":raylite_task_end:{TID}:1\nafter\n")


def test_a_line_left_open_before_a_task_is_ended_before_its_marker():
    def body(s, marks):
        s.write("no newline")
        marks.begin(bytes.fromhex(TID), 0)
        s.write("x\n")
        marks.end()
    assert _run(body) == (f"no newline\n:raylite_task_begin:{TID}:0\nx\n"
                          f":raylite_task_end:{TID}:0\n")


def test_lines_read_after_the_next_task_began_keep_their_tasks_label():
    """The pump may read a task's lines after the worker began the next task (the race
    that once labelled `work`'s line with the next task's name): the begin marker before
    a line, not the worker's current name, says whose it is."""
    from types import SimpleNamespace

    from raylite._worker.output import _labelled

    other = "cd" * 16

    def body(s, marks):
        s.write("between tasks\n")
        marks.begin(bytes.fromhex(TID), 0, "work")
        print("w1", file=s)
        print("w2", file=s)
        marks.end()
        marks.begin(bytes.fromhex(other), 0, "chatty")
        print("c1", file=s)
        marks.end()
    lines = _run(body).encode().split(b"\n")[:-1]
    executor = SimpleNamespace(current_name="chatty")   # what the worker runs by now
    state = [None]
    got = [(label, [x.decode() for x in group]) for label, group in
           _labelled(lines[:3], executor, state) + _labelled(lines[3:], executor, state)]
    assert got == [("chatty", ["between tasks"]), ("work", ["w1"]), ("work", ["w2"]),
                   ("chatty", ["c1"])]


class _Rec:
    def __init__(self, attempt=0, pid=7, worker="w" * 32):
        self.task_id, self.attempt_number, self.worker_pid = TID, attempt, pid
        self.worker_id, self.state = worker, "FINISHED"


def _files(tmp_path, contents: dict) -> dict:
    out = {}
    for name, text in contents.items():
        p = tmp_path / name
        p.write_text(text)
        os.chmod(p, 0o600)
        out[name] = str(p)
    return out


def test_a_tasks_lines_are_found_across_rotated_files(tmp_path):
    base = "worker-" + "w" * 32 + "-7.out"
    files = _files(tmp_path, {
        base + ".2": "old\n",
        base + ".1": f"x\n:raylite_task_begin:{TID}:0\nfirst\n",
        base: f"second\n:raylite_task_end:{TID}:0\n:raylite_task_begin:{'cd' * 16}:0\nother\n",
        "worker-" + "w" * 32 + "-8.out": "another worker\n"})
    assert [os.path.basename(p) for p in worker_files(files, "w" * 32, 7, "out")] == \
        [base + ".2", base + ".1", base]
    assert list(task_lines(files, _Rec(), "out", -1, False, 0.01)) == ["first\n", "second\n"]
    assert list(task_lines(files, _Rec(), "out", 1, False, 0.01)) == ["second\n"]
    assert list(task_lines(files, _Rec(attempt=1), "out", -1, False, 0.01)) == []


def test_a_task_that_did_not_run_or_left_no_file_says_so(tmp_path):
    with pytest.raises(RayStateApiException, match="has not run yet"):
        task_lines({}, _Rec(pid=None), "out", -1, False, 0.01)
    with pytest.raises(RayStateApiException, match="printed nothing .* another node"):
        task_lines({}, _Rec(), "err", -1, False, 0.01)


def test_a_task_without_its_end_marker_yet_ends_at_the_next_tasks_begin(tmp_path):
    base = "worker-" + "w" * 32 + "-7.out"
    files = _files(tmp_path, {base: f":raylite_task_begin:{TID}:0\nmine\n"
                                    f":raylite_task_begin:{'cd' * 16}:0\nnot mine\n"})
    assert list(task_lines(files, _Rec(), "out", -1, False, 0.01)) == ["mine\n"]


def test_following_a_running_task_stops_once_it_ended(tmp_path):
    base = "worker-" + "w" * 32 + "-7.out"
    files = _files(tmp_path, {base: f":raylite_task_begin:{TID}:0\nso far\n"})
    rec = _Rec()
    rec.state = "RUNNING"
    asked = []

    def running():
        asked.append(1)
        if len(asked) == 2:  # it prints a last line, then ends
            with open(files[base], "a") as f:
                f.write("last\n")
        return len(asked) < 3
    assert list(task_lines(files, rec, "out", -1, True, 0.01, running)) == ["so far\n", "last\n"]
    assert len(asked) == 3


OTHER = "cd" * 16


class _Call:
    def __init__(self, task_id: str, attempt: int):
        self.task_id, self.attempt = bytes.fromhex(task_id), attempt


def test_shared_streams_mark_each_run_of_a_calls_lines_and_keep_its_partial_line():
    import contextvars

    def body(s, marks):
        marks.share()
        ca, cb, quiet = _Call(TID, 0), _Call(OTHER, 2), _Call(OTHER, 3)
        a = contextvars.Context()                 # an async call's task
        a.run(marks.enter_task, ca)
        a.run(print, "a1", file=s)
        a.run(s.write, "a-half")                  # waits in a's own partial line
        s.write("no call's\n")                    # this thread runs no call
        marks.enter_thread(cb)                    # now it runs one (a pool thread's call)
        print("b1", file=s)
        print("b2", file=s)
        marks.leave_thread(cb)                    # after an end, no one's turn: no marker
        marks.enter_thread(quiet)
        marks.leave_thread(quiet)                 # printed nothing: no marker
        a.run(s.write, "-rest\na2")
        marks.leave_task(ca)                      # its rest of a line, ended
        assert marks.wrote == set() and marks.calls == {}
    assert _run(body) == (
        f":raylite_task_begin:{TID}:0\na1\n:raylite_task_begin:-:-\nno call's\n"
        f":raylite_task_begin:{OTHER}:2\nb1\nb2\n:raylite_task_end:{OTHER}:2\n"
        f":raylite_task_begin:{TID}:0\na-half-rest\na2\n:raylite_task_end:{TID}:0\n")


def test_a_calls_lines_are_read_from_each_of_its_runs(tmp_path):
    base = "worker-" + "w" * 32 + "-7.out"
    files = _files(tmp_path, {base: (
        f":raylite_task_begin:{TID}:0\na1\n:raylite_task_begin:{OTHER}:2\nb1\n"
        f":raylite_task_begin:-:-\nno call's\n:raylite_task_begin:{TID}:0\na2\n"
        f":raylite_task_end:{OTHER}:2\na3\n:raylite_task_end:{TID}:0\nlater\n")})
    assert list(task_lines(files, _Rec(), "out", -1, False, 0.01)) == ["a1\n", "a2\n", "a3\n"]
    other = _Rec(attempt=2)
    other.task_id = OTHER
    assert list(task_lines(files, other, "out", -1, False, 0.01)) == ["b1\n"]
