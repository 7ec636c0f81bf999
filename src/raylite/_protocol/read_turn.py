"""Whose turn it is to read a connection: its reader thread, or a thread waiting in get().

A call made one at a time (`get(f.remote())`) would otherwise cost two thread
wake-ups per reply: the reader thread wakes for the bytes, then wakes the
waiting thread. When the waiting thread reads the reply itself, one wake-up
goes. The turn moves without kicking anyone out of a blocking read:

    reader thread holds the turn ──a get() asks (wanted)──► after its next batch
        the reader thread hands the turn over and sleeps (sticky: the turn stays
        with the waiting side between gets, so a loop of calls never hands back)
    foreground holds the turn ──not read for IDLE_CHECK, or handed back──► reader thread

Only one side reads at any time, so one connection's buffer is never read by
two threads. The reader thread looks every IDLE_CHECK seconds while it sleeps:
a reply that arrives when nobody waits in get() is read at most about twice
that late.

Ctrl-C while the thread in get() reads (the driver's main thread, usually).
A KeyboardInterrupt may land between any two bytecodes, and a reply read off
the socket exists nowhere else: interrupted between the read and its handling
it would be lost, and its ref would never complete. So `shield` defers
SIGINT's Python handler while the main thread reads and handles: the reader
polls, decodes and handles a batch with `shield.on` set (a handler that fires
then only notes the signal), and runs the handler once the batch is handled
(`shield.off()`). The only wait it may be interrupted in consumes nothing
(Connection.wait_readable). Submitting a task or actor call on the main thread
is shielded the same way (cluster.py), so a call is never booked but unsent.
The wrapper is installed the first time the main thread submits or reads and
is put back by raylite.shutdown(); a handler the program sets later is wrapped
in turn; SIG_IGN and SIG_DFL (no exception) are left alone. A stretch normally
lasts microseconds; one stuck longer (a send to an actor that reads nothing
while it runs a long call) still yields to a second Ctrl-C STUCK_S after the
first, as the user's way out.
"""
from __future__ import annotations

import _signal
import signal
import threading
import time

_SIGINT = int(signal.SIGINT)
STUCK_S = 1.0  # a stretch still shielded this long after a Ctrl-C lets the next one through
_get_ident = threading.get_ident


class ReadTurn:
    IDLE_CHECK = 0.002

    __slots__ = ("_cv", "_fg", "_busy", "_used", "_wanted", "closed")

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._fg = False       # the foreground side holds the turn (sticky between gets)
        self._busy = False     # ... and a thread is reading with it right now
        self._used = False     # the foreground read since the reader thread last looked
        self._wanted = False   # a thread in get() asked for the turn
        self.closed = False

    # -- the reader thread ---------------------------------------------------
    def background_wait(self) -> None:
        """Returns when the reader thread holds the turn (at once, usually)."""
        if not self._fg:
            return
        with self._cv:
            while self._fg and not self.closed:
                self._cv.wait(self.IDLE_CHECK)
                if self._fg and not self._busy and not self._used:
                    self._fg = False   # nobody read for a while: replies need a reader
                self._used = False

    def background_done(self) -> None:
        """After the reader thread handled a batch: hand the turn to a get() that asked."""
        if self._wanted:
            with self._cv:
                self._wanted = False
                self._fg = self._used = True

    # -- a thread waiting in get() ---------------------------------------------
    def lead(self) -> bool:
        """True when the caller may read now; else it waits as usual (and asks for next time)."""
        with self._cv:
            if not self._fg:
                self._wanted = True
                return False
            if self._busy:
                return False
            self._busy = self._used = True
            return True

    def unlead(self, give_back: bool) -> None:
        """The caller stops reading; give_back wakes the reader thread to read from now on."""
        with self._cv:
            self._busy = False
            if give_back:
                self._fg = False
                self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()


class InterruptShield:
    """Defers SIGINT's Python handler while the main thread is inside a read (see above).

    Shielded stretches never nest. Per use: one thread-id compare and one handler
    look-up (`shielding()`), two attribute stores and a look at `pending`."""

    __slots__ = ("on", "pending", "wrapped", "handler", "main")

    def __init__(self) -> None:
        self.on = False        # the main thread is in a stretch that must not be cut short
        self.pending = None    # (frame, when) of the first SIGINT that came meanwhile
        self.wrapped = None    # the program's own handler, run now or after the stretch
        self.handler = self._handle  # one bound method, so `is` finds it again
        self.main = None       # the main thread's id (reset() by each new runtime: forks)

    def reset(self) -> None:
        self.on, self.pending, self.main = False, None, threading.main_thread().ident

    def _handle(self, signum, frame) -> None:
        if self.on:
            if self.pending is None:
                self.pending = (frame, time.monotonic())
                return
            if time.monotonic() - self.pending[1] < STUCK_S:
                return
            self.pending = None  # stuck (a send to a peer that reads nothing): let it through
        self.wrapped(signum, frame)

    def arm(self) -> bool:
        """True when the caller is the main thread and SIGINT now goes through us (then it
        may set `on`). A thread that is not the main one never gets a KeyboardInterrupt."""
        if _get_ident() != self.main:
            return False
        current = _signal.getsignal(_SIGINT)
        if current is self.handler:
            return True
        if not callable(current):  # SIG_IGN, SIG_DFL, or set outside Python: no exception here
            return False
        self.wrapped = current
        _signal.signal(_SIGINT, self.handler)
        return True

    def off(self) -> None:
        """Ends the shielded stretch; a SIGINT that came meanwhile is handled now."""
        self.on = False
        if self.pending is not None:
            (frame, _), self.pending = self.pending, None
            self.wrapped(_SIGINT, frame)

    def disarm(self) -> None:
        """Puts the program's own handler back (raylite.shutdown(), on the main thread)."""
        if _get_ident() == self.main and _signal.getsignal(_SIGINT) is self.handler:
            _signal.signal(_SIGINT, self.wrapped)


shield = InterruptShield()
_getsignal = _signal.getsignal


def shielding() -> bool:
    """shield.arm(), cheap once armed (inlined checks, no method call): the hot paths ask it
    once per call, then set `shield.on` and clear it, calling `shield.off()` only when a
    SIGINT is pending."""
    return _get_ident() == shield.main and (_getsignal(_SIGINT) is shield.handler or shield.arm())
