"""The rule for an actor's creation-task attempts (raylite._core.actor_attempts), folded by
the task-event store as the GCS feeds it."""
from raylite._core import actor_attempts as aa
from raylite._core.task_events import TaskEventTable

A, JOB, PARENT = b"\x01" * 16, b"\x02" * 4, b"\x03" * 16


def _ended(before, after, on_purpose, attempt=0):
    return aa.ended(A, attempt, before, after, aa.WORKER_DIED, "ActorDiedError: gone",
                    on_purpose, JOB, "C", PARENT, 10.0)


def test_a_death_fails_the_attempt_and_a_restart_opens_the_next():
    assert [e[:3] for e in _ended("ALIVE", "RESTARTING", False)] == \
        [(A, 0, "FAILED"), (A, 1, "PENDING_NODE_ASSIGNMENT")]
    assert _ended("ALIVE", "RESTARTING", False)[1][4] == (JOB, "C.__init__", A, PARENT)
    assert [e[:3] for e in _ended("ALIVE", "DEAD", False, 2)] == [(A, 2, "FAILED")]
    assert _ended("ALIVE", "DEAD", False)[0][4] == (aa.WORKER_DIED, "ActorDiedError: gone")


def test_an_end_on_purpose_after_init_keeps_the_attempt_finished():
    assert _ended("ALIVE", "DEAD", True) == []
    assert [e[:3] for e in _ended("ALIVE", "RESTARTING", True)] == \
        [(A, 0, "FAILED"), (A, 1, "PENDING_NODE_ASSIGNMENT")]
    assert [e[:3] for e in _ended("PENDING", "DEAD", True)] == [(A, 0, "FAILED")]
    assert _ended("DEAD", "DEAD", False) == []


def test_the_store_keeps_one_row_per_attempt_with_the_parent_carried_over():
    t = TaskEventTable()
    t.add([(A, 0, "PENDING_NODE_ASSIGNMENT", 1.0, (JOB, "C.__init__", A, PARENT))], "owner")
    t.add([(A, 0, "RUNNING", 2.0, (JOB, "C.__init__")),
           (A, 0, "FINISHED", 3.0, (JOB, "C.__init__", 2.0))], "w1", "n", "w", 11)
    assert aa.parent_of(t, A, 0) == PARENT and aa.parent_of(t, A, 5) is None
    t.add(aa.ended(A, 0, "ALIVE", "RESTARTING", aa.WORKER_DIED, "gone", False, JOB, "C",
                   aa.parent_of(t, A, 0), 4.0), "owner")
    rows, total = t.query([("task_id", "=", A.hex())])
    assert total == 2
    died, pending = sorted(rows, key=lambda r: r.attempt_number)
    assert (died.state, died.error_type, died.worker_pid) == ("FAILED", "WORKER_DIED", 11)
    assert (pending.attempt_number, pending.state, pending.type) == \
        (1, "PENDING_NODE_ASSIGNMENT", "ACTOR_CREATION_TASK")
    assert pending.parent_task_id == PARENT.hex() and pending.owner_address == "owner"
    assert [e[0] for e in died.events] == ["PENDING_NODE_ASSIGNMENT", "RUNNING", "FAILED"]


def test_a_death_heard_before_the_owners_event_is_kept():
    """An actor no node can hold dies as it is created, before its owner's event of attempt 0
    reaches the store: the GCS opens the record, and the owner's event does not undo it."""
    t = TaskEventTable()
    t.add(aa.ended(A, 0, "PENDING", "DEAD", aa.UNSCHEDULABLE, "no node", True, JOB, "C", None,
                   1.0, known=False), None)
    t.add([(A, 0, "PENDING_NODE_ASSIGNMENT", 0.5, (JOB, "C.__init__", A, PARENT))], "owner")
    [row], _ = t.query([("task_id", "=", A.hex())])
    assert (row.state, row.error_type, row.type) == \
        ("FAILED", "ACTOR_UNSCHEDULABLE_ERROR", "ACTOR_CREATION_TASK")
    assert row.creation_time_ms == 500 and row.parent_task_id == PARENT.hex()
    assert row.owner_address == "owner"


def test_a_death_heard_before_the_workers_finished_of_init_stays_failed():
    """The incarnation died within its worker's last batch of events: the GCS's FAILED (at
    4.0) reaches the store before the worker's FINISHED of __init__ (at 3.0); the attempt
    stays FAILED, with the worker's place and times. Heard in the other order, the same."""
    for worker_first in (False, True):
        t = TaskEventTable()
        t.add([(A, 0, "PENDING_NODE_ASSIGNMENT", 1.0, (JOB, "C.__init__", A, PARENT))], "o")
        died = aa.ended(A, 0, "ALIVE", "DEAD", aa.WORKER_DIED, "gone", False, JOB, "C",
                        PARENT, 4.0)
        ran = [(A, 0, "RUNNING", 2.0, (JOB, "C.__init__")),
               (A, 0, "FINISHED", 3.0, (JOB, "C.__init__", 2.0))]
        batches = [(ran, ("w1", "n", "w", 11)), (died, ("o",))]
        if not worker_first:
            batches.reverse()
        for batch, where in batches:
            t.add(batch, *where)
        [row], _ = t.query([("task_id", "=", A.hex())])
        assert (row.state, row.error_type, row.worker_pid) == ("FAILED", "WORKER_DIED", 11)
        assert row.start_time_ms == 2000
