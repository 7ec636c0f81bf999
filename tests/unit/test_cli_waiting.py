"""The CLI's waiting line (raylite start waiting for a daemon, job submit for its job)."""
import io

from raylite.cli import _progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_nothing_is_shown_for_a_short_wait(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    out = _Tty()
    w = _progress.Waiting("waiting for the head daemon", out)
    now[0] += 0.5
    w.tick()
    w.done()
    assert out.getvalue() == ""


def test_a_terminal_sees_the_line_redrawn_then_erased(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    out = _Tty()
    w = _progress.Waiting("waiting for the head daemon", out)
    for _ in range(3):
        now[0] += 1.0
        w.tick()
    w.done()
    assert out.getvalue() == ("\r\x1b[Kwaiting for the head daemon (1 s)"
                              "\r\x1b[Kwaiting for the head daemon (2 s)"
                              "\r\x1b[Kwaiting for the head daemon (3 s)\r\x1b[K")


def test_a_pipe_gets_the_line_once(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    w = _progress.Waiting("Job 'x' is pending: waiting for it to start", out)
    for _ in range(5):
        now[0] += 1.0
        w.tick()
    w.done()
    assert out.getvalue() == "Job 'x' is pending: waiting for it to start\n"
