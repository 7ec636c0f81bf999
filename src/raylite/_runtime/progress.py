"""Progress bars (raylite.experimental.tqdm_ray): drawn by the driver, one line per bar.

    tqdm.update() in a task or actor ─► Runtime.progress(update) ─► Outgoing: the bar's
        latest state, kept until the worker's maintenance thread sends it (at most every
        SEND_S per bar; at once when it closes) ─► ProgressUpdate ─► node daemon ─► driver
    driver: ProgressUpdate, and its own tqdm.update() ─► display().update()
    driver: worker output (LogLines) ─► display().write(): bars cleared, lines written, bars
        drawn again, under one lock, so a bar never lands inside a line of output

On a terminal (stderr is a tty) the open bars are the last lines, redrawn in place (at
most every DRAW_S); a closed bar is printed once as a line of its own. Elsewhere (a pipe,
a log file) a bar is printed as a whole line when it starts, at most every LINE_S while it
moves, and when it closes. Local mode and a process without init() draw in the process.
A driver's shutdown waits up to CLOSE_WAIT_S for workers' bars that are still open (their
last states travel behind the results), so a script that exits at once still shows them.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, NamedTuple

from .per_process import PerProcess

SEND_S = 0.2     # a worker sends a bar's state at most this often
DRAW_S = 0.1     # a terminal's bars are redrawn at most this often
LINE_S = 5.0     # off a terminal: a moving bar's line at most this often
WIDTH = 20       # characters of the bar itself
CLOSE_WAIT_S = 0.5
MAX_BARS = 64    # open bars a driver keeps; the oldest goes first


class BarState(NamedTuple):
    bar_id: str
    desc: str
    n: int
    total: int | None
    position: int | None
    pid: int
    closed: bool


def line_of(s: BarState, elapsed: float, remote: bool) -> str:
    """`desc: 40%|########            | 4/10 [00:02<00:03, 2.00it/s]`, as tqdm draws it."""
    rate = s.n / elapsed if elapsed > 0 else 0.0
    head = (f"{s.desc}: " if s.desc else "") + (f"(pid={s.pid}) " if remote else "")
    speed = f"{rate:.2f}it/s"
    if s.total:
        frac = min(max(s.n / s.total, 0.0), 1.0)
        fill = int(frac * WIDTH)
        left = _clock((s.total - s.n) / rate) if rate > 0 and s.n <= s.total else "?"
        return (f"{head}{int(frac * 100):3d}%|{'#' * fill}{' ' * (WIDTH - fill)}| "
                f"{s.n}/{s.total} [{_clock(elapsed)}<{left}, {speed}]")
    return f"{head}{s.n}it [{_clock(elapsed)}, {speed}]"


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Outgoing:
    """A worker's bars waiting to be sent: the latest state of each, sent by send_due()."""

    def __init__(self):
        self._lock = threading.Lock()
        self._bars: dict[str, BarState] = {}
        self._sent: dict[str, float] = {}   # bar id -> when its state was last sent

    def put(self, s: BarState) -> None:
        with self._lock:
            self._bars[s.bar_id] = s

    def send_due(self, now: float, send: Any, force: bool = False) -> None:
        """Sends (`send(state)`) the states due: closed ones, those not sent for SEND_S (all
        with `force`). Under the lock, so two threads never send one bar's states out of order."""
        with self._lock:
            if not self._bars:
                return
            for s in [s for s in self._bars.values()
                      if force or s.closed or now - self._sent.get(s.bar_id, 0.0) >= SEND_S]:
                del self._bars[s.bar_id]
                if s.closed:
                    self._sent.pop(s.bar_id, None)
                else:
                    self._sent[s.bar_id] = now
                send(s)


class _Bar:
    __slots__ = ("state", "start", "printed", "remote")

    def __init__(self, state: BarState, now: float, remote: bool):
        self.state, self.start, self.remote = state, now, remote
        self.printed: float | None = None   # off a terminal: when its line was last printed


class Display:
    """The bars a driver (or a local-mode process) draws, and the output written between."""

    def __init__(self, out: Any = None):
        self._out = out
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._bars: dict[tuple, _Bar] = {}    # (job, bar id) -> its bar
        self._drawn = 0                       # bar lines on the terminal below the output
        self._last_draw = 0.0

    @property
    def out(self) -> Any:
        return self._out if self._out is not None else sys.stderr

    def _tty(self) -> bool:
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    def update(self, s: BarState, source: Any = None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (source, s.bar_id)
        with self._lock:
            bar = self._bars.get(key)
            new = bar is None
            if new:
                if len(self._bars) >= MAX_BARS:  # bars whose worker died never close
                    del self._bars[next(iter(self._bars))]
                bar = self._bars[key] = _Bar(s, now, source is not None)
            bar.state = s
            if s.closed:
                del self._bars[key]
                self._changed.notify_all()
            if self._tty():
                if new or s.closed or now - self._last_draw >= DRAW_S:
                    self._draw_tty(bar, now)
            elif s.closed or bar.printed is None or now - bar.printed >= LINE_S:
                bar.printed = now
                self._emit(line_of(s, now - bar.start, bar.remote) + "\n")

    def wait_closed(self, timeout: float) -> None:
        """Waits up to `timeout` s while workers' bars are still open: a driver that got its
        results and exits at once would otherwise miss their last states, still on the way."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(b.remote for b in self._bars.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def write(self, stream: Any, text: str) -> None:
        """Output lines (a worker's, as its driver prints them), never mixed with a bar."""
        with self._lock:
            if self._drawn:
                self._clear()
                stream.write(text)
                stream.flush()
                self._redraw(time.monotonic())
            else:
                stream.write(text)
                stream.flush()

    # -- a terminal ------------------------------------------------------------------
    def _draw_tty(self, bar: _Bar, now: float) -> None:
        self._clear()
        if bar.state.closed:
            self._emit(line_of(bar.state, now - bar.start, bar.remote) + "\n")
        self._redraw(now)

    def _clear(self) -> None:
        if self._drawn:
            self._emit(f"\x1b[{self._drawn}F\x1b[J")   # up to the first bar's line, erase below
            self._drawn = 0

    def _redraw(self, now: float) -> None:
        bars = sorted(self._bars.values(), key=lambda b: (b.state.position is None,
                                                          b.state.position or 0, b.start))
        if bars:
            self._emit("".join(line_of(b.state, now - b.start, b.remote) + "\n" for b in bars))
        self._drawn = len(bars)
        self._last_draw = now

    def _emit(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            pass


_display = PerProcess(Display)


def display_if_any() -> Display | None:
    return _display.if_any()


def display() -> Display:
    """This process's Display (made again in a forked child)."""
    return _display.get()
