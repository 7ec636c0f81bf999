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
"""
from __future__ import annotations

import threading


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
