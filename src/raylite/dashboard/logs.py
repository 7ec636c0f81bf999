"""The logs page: the files of the session's logs/ (and the head daemon's own log), each
tailed, with follow.

    /logs                    list_logs(dirs) ─► name, size, modified, one link per file
    /logs/view?name=F        the last TAIL_BYTES of F, in <pre id=log data-offset=size>
    /tasks/log?task_id=ID    the lines one task attempt printed (task_page: the markers its
                             worker writes around them); the files' views leave them out
    /logs/tail?name=F&offset=N   JSON {"offset", "text", "reset"}: what F holds past N (at
                             most CHUNK_BYTES a call); reset when F shrank (rotated or
                             truncated): the page clears and starts again from its tail

A name is served only when it is one of the listed files (looked up, never joined to a
path), so `../` or an absolute path in the query reaches nothing. Files are opened with
O_NOFOLLOW and must be regular files owned by this user.
"""
from __future__ import annotations

import json
import os
import stat
import time

from .. import _private_files as private
from .html import esc, layout, table

TAIL_BYTES = 64 * 1024
TASK_LINES = 2000
CHUNK_BYTES = 256 * 1024


def sources(log_dir: str | None) -> dict[str, str]:
    """name -> path of every log the page may show: util.state.logs.log_files, the listing
    `raylite logs` gives (the session's logs/ first, then the daemons')."""
    from raylite.util.state.logs import log_files

    if not log_dir:
        return {}
    try:
        files = log_files(os.path.dirname(os.path.dirname(log_dir)), os.path.dirname(log_dir))
    except private.NotPrivateError:
        return {}  # not ours alone: nothing in it is shown
    return {**files["job"], **files["worker"], **files["node"]}


def _open(path: str):
    """A binary file object for a regular file of ours (_private_files' checks), or None."""
    try:
        return os.fdopen(private.open_file(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except (OSError, private.NotPrivateError):
        return None


def _read(path: str, offset: int, limit: int) -> tuple[bytes, int, int] | None:
    """(bytes from offset, at most limit; the new offset; file size), or None."""
    f = _open(path)
    if f is None:
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        f.seek(offset)
        data = f.read(min(limit, max(size - offset, 0)))
        return data, offset + len(data), size


def list_page(log_dir: str | None) -> tuple[int, str]:
    if not log_dir:
        return 200, layout("Logs", "/logs", "<p class=empty>This cluster's session dir is not on "
                                           "this machine: its logs cannot be shown here.</p>")
    rows = []
    for name, path in sources(log_dir).items():
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        rows.append([f'<a href="/logs/view?name={esc(name)}" class=log-link>{esc(name)}</a>',
                     f"{st.st_size:,d}",
                     esc(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)))])
    body = (f"<p>Files in <code>{esc(log_dir)}</code> and the daemons' logs.</p>"
            + table(["file", "bytes", "modified"], rows, "logs-table", "no log files yet"))
    return 200, layout("Logs", "/logs", body)


def view_page(log_dir: str | None, query: dict) -> tuple[int, str]:
    name = query.get("name", "")
    path = sources(log_dir).get(name)
    got = _read(path, 0, 0) if path else None
    if got is None:
        return 404, layout("Logs", "/logs", f'<p class=error>No log named {esc(name)!s}: see the '
                                            '<a href="/logs">list</a>.</p>', refresh=False)
    size = got[2]
    start = max(size - TAIL_BYTES, 0)
    data, end, _ = _read(path, start, TAIL_BYTES) or (b"", start, size)
    text = unmarked(data.decode("utf-8", "replace"))
    cut = f"<p class=empty>(the last {TAIL_BYTES // 1024} KiB of {size:,d} bytes)</p>" if start else ""
    body = (f'<p><a href="/logs">&larr; all logs</a> · <label><input type=checkbox id=follow '
            f'checked> follow</label></p>{cut}'
            f'<pre id=log data-name="{esc(name)}" data-offset="{end}">{esc(text)}</pre>')
    return 200, layout(name, "/logs", body, refresh=False)


def tail(log_dir: str | None, query: dict) -> tuple[int, str]:
    """(status, JSON) of what the log holds past `offset`."""
    path = sources(log_dir).get(query.get("name", ""))
    try:
        offset = max(int(query.get("offset", "0")), 0)
    except ValueError:
        return 400, json.dumps({"error": "offset must be a whole number of bytes"})
    got = _read(path, offset, CHUNK_BYTES) if path else None
    if got is None:
        return 404, json.dumps({"error": "no such log"})
    data, end, size = got
    reset = size < offset
    if reset:
        data, end, _ = _read(path, max(size - TAIL_BYTES, 0), TAIL_BYTES) or (b"", 0, size)
    return 200, json.dumps({"offset": end, "text": unmarked(data.decode("utf-8", "replace")),
                            "reset": reset})


def unmarked(text: str) -> str:
    """The text without the task markers a worker writes in its files (_worker/output.py)."""
    if ":raylite_task_" not in text:
        return text
    from raylite.util.state.task_logs import is_marker

    return "".join(x for x in text.splitlines(keepends=True) if not is_marker(x))


def task_page(reader, query: dict) -> tuple[int, str]:
    """/tasks/log?task_id=ID[&attempt=N][&err=1]: the lines that task attempt printed (the
    last TASK_LINES), found as `raylite logs --task-id` finds them (util/state/task_logs.py)."""
    from raylite.util.state import RayStateApiException
    from raylite.util.state.logs import log_files
    from raylite.util.state.task_logs import attempt_of, task_lines

    task_id, err = query.get("task_id", ""), query.get("err") == "1"
    try:
        attempt = int(query["attempt"]) if query.get("attempt", "") != "" else None
    except ValueError:
        attempt = None
    title = f"Output of task {task_id[:16]}"
    try:
        record = attempt_of(reader.target, task_id, attempt, 10.0)
        files = log_files(reader.target.temp_dir, reader.session_dir)["worker"]
        lines = list(task_lines(files, record, "err" if err else "out", TASK_LINES, False, 0.25))
    except (RayStateApiException, OSError, private.NotPrivateError) as e:
        return 404, layout(title, "/tasks", f'<p class=error id=task-log-error>{esc(e)}</p>',
                           refresh=False)
    other = (f'<a href="/tasks/log?task_id={esc(task_id)}&amp;attempt={record.attempt_number}'
             f'&amp;err={"0" if err else "1"}" id=task-log-other>'
             f'{"stdout" if err else "stderr"}</a>')
    body = (f'<p><a href="/tasks">&larr; tasks</a> · {esc(record.name)}, attempt '
            f'{record.attempt_number}, {esc(record.state)}, worker pid {esc(record.worker_pid)} · '
            f'{"stderr" if err else "stdout"} (also: {other})</p>'
            + (f'<pre id=task-log>{esc("".join(lines))}</pre>' if lines else
               f'<p class=empty id=task-log-empty>this attempt printed nothing to '
               f'{"stderr" if err else "stdout"}</p>'))
    return 200, layout(title, "/tasks", body, refresh=False)
