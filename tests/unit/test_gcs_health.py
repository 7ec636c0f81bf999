"""The GCS's health rules (_gcs/health.py): pure, on a clock the test moves."""
import pytest

from raylite._gcs.health import Health

A, B = b"a" * 16, b"b" * 16


def test_a_node_silent_past_the_timeout_expires_once():
    h = Health(10.0)
    assert (h.heartbeat_s, h.period_s) == (1.0, 1.0)  # at most one message a second
    h.joined(A, 0.0)
    h.joined(B, 0.0)
    for t in range(1, 10):
        h.heard(B, float(t))
        assert h.expired(float(t)) == []
    h.heard(B, 10.0)
    assert h.expired(10.5) == [(A, 10.5)]   # silent 10.5 s
    assert h.expired(11.0) == []            # no longer watched: reported once
    assert h.statistics() == {"watched": 1, "timeout_s": 10.0, "heartbeat_s": 1.0,
                              "marked_dead": 1}


def test_nodes_that_left_or_were_never_watched_never_expire():
    h = Health(1.0)
    assert h.heartbeat_s == pytest.approx(0.2)  # a fifth of a short timeout
    h.heard(A, 0.0)                             # not watched (the head's node): ignored
    h.joined(B, 0.0)
    h.left(B)
    assert h.expired(0.2) == [] and h.expired(0.4) == [] and h.statistics()["watched"] == 0


def test_a_late_check_gives_every_node_a_fresh_start():
    """The head's process was stopped or starved: it heard nobody, so it blames nobody."""
    h = Health(10.0)
    h.joined(A, 0.0)
    assert h.expired(1.0) == []
    assert h.expired(30.0) == []            # 29 s since the last check: a fresh start
    assert h.expired(35.0) == []
    assert h.expired(40.5) == [(A, 10.5)]   # then silent past the timeout again


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match="must be > 0"):
        Health(bad)
