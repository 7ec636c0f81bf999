"""An actor's creation task (Ray's ACTOR_CREATION_TASK: its id the actor's, its name
"Class.__init__") has one attempt per incarnation: a restart fails the attempt that ended
(with why) and starts the next (attempt_number + 1), as Ray numbers it. Events travel in
batches, so the tests wait (bounded) for what the workers and the GCS report."""
import os
import signal

import pytest

import raylite
from raylite.util import state

from test_task_events import until

pytestmark = pytest.mark.raylite_only("raylite's own task-event store and state API")


def _attempts(actor_id: str) -> list:
    return sorted(state.list_tasks(filters=[("task_id", "=", actor_id)], detail=True),
                  key=lambda r: r.attempt_number)


def _settled(rows: list, n: int) -> bool:
    """n attempts, every one but the last FAILED, the last FINISHED."""
    return len(rows) == n and all(r.state == "FAILED" for r in rows[:-1]) \
        and rows[-1].state == "FINISHED"


def _call_until_back(call, old, timeout: float = 60.0):
    """The value of call() once the actor answers with something other than `old`: calls
    made while its death is not yet known fail (max_task_retries=0), later ones wait for the
    restart."""
    def value():
        try:
            return raylite.get(call(), timeout=10)
        except (raylite.exceptions.RayActorError, raylite.exceptions.GetTimeoutError):
            return old
    return until(value, lambda v: v != old, timeout)


@pytest.mark.cluster_only("an actor's process to kill")
def test_a_killed_actor_process_fails_attempt_0_and_restarts_as_attempt_1(ray, capsys):
    @ray.remote(max_restarts=2)
    class Phoenix:
        def __init__(self):
            print(f"rising in {os.getpid()}")

        def pid(self):
            return os.getpid()

    a = Phoenix.remote()
    actor_id = a._actor_id.hex()
    pid = ray.get(a.pid.remote())
    [first] = until(lambda: _attempts(actor_id), lambda r: _settled(r, 1))
    assert first.state == "FINISHED" and first.worker_pid == pid
    os.kill(pid, signal.SIGKILL)
    new_pid = _call_until_back(a.pid.remote, pid)
    assert new_pid != pid
    rows = until(lambda: _attempts(actor_id), lambda r: _settled(r, 2))
    assert [(r.attempt_number, r.state) for r in rows] == [(0, "FAILED"), (1, "FINISHED")]
    died, back = rows
    assert died.error_type == "WORKER_DIED" and "Phoenix died" in died.error_message
    assert died.worker_pid == pid and died.start_time_ms <= died.end_time_ms
    assert back.worker_pid == new_pid and back.error_type is None
    for r in rows:
        assert r.task_id == r.actor_id == actor_id and r.type == "ACTOR_CREATION_TASK"
        assert r.name == r.func_or_class_name == "Phoenix.__init__"
        assert r.job_id == raylite.get_runtime_context().get_job_id()
    assert [e["state"] for e in back.events] == ["PENDING_NODE_ASSIGNMENT", "RUNNING", "FINISHED"]
    assert [e["state"] for e in died.events][-1] == "FAILED"
    assert [r.attempt_number for r in state.get_task(actor_id)] == [0, 1]
    summary = state.summarize_tasks()["cluster"]
    assert summary["total_actor_scheduled"] == 2  # Phoenix's placements: its first, a restart
    summary = summary["summary"]["Phoenix.__init__"]
    assert summary["type"] == "ACTOR_CREATION_TASK"
    assert summary["state_counts"] == {"FAILED": 1, "FINISHED": 1}
    from raylite.cli.main import main  # `raylite list tasks`, asking this driver's cluster

    capsys.readouterr()
    with pytest.raises(SystemExit) as code:
        main(["list", "tasks", "--filter", f"task_id={actor_id}"])
    table = capsys.readouterr().out.splitlines()
    assert code.value.code == 0 and table[0].split()[:4] == \
        ["TASK_ID", "ATTEMPT_NUMBER", "NAME", "STATE"]
    assert [line.split()[:4] for line in table[1:]] == \
        [[actor_id, "0", "Phoenix.__init__", "FAILED"], [actor_id, "1", "Phoenix.__init__",
                                                         "FINISHED"]]
    # what each incarnation's __init__ printed is that attempt's output
    lines = lambda n: list(state.get_log(task_id=actor_id, attempt_number=n))
    assert until(lambda: lines(1), lambda got: got == [f"rising in {new_pid}\n"]) == \
        [f"rising in {new_pid}\n"]
    assert lines(0) == [f"rising in {pid}\n"]


def test_ray_kill_with_restart_is_a_new_attempt_and_a_kill_for_good_keeps_it(ray):
    @ray.remote(max_restarts=2)
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self):
            self.n += 1
            return self.n

    a = Counter.remote()
    actor_id = a._actor_id.hex()
    assert ray.get(a.add.remote()) == 1
    until(lambda: _attempts(actor_id), lambda r: _settled(r, 1))
    ray.kill(a, no_restart=False)
    assert _call_until_back(a.add.remote, None) == 1  # a new instance: its count starts again
    rows = until(lambda: _attempts(actor_id), lambda r: _settled(r, 2))
    assert [(r.attempt_number, r.state, r.error_type) for r in rows] == \
        [(0, "FAILED", "ACTOR_DIED"), (1, "FINISHED", None)]
    ray.kill(a)  # for good: the last creation succeeded, and stays so
    with pytest.raises(raylite.exceptions.RayActorError):
        ray.get(a.add.remote(), timeout=30)
    assert [(r.attempt_number, r.state) for r in _attempts(actor_id)] == \
        [(0, "FAILED"), (1, "FINISHED")]


@pytest.mark.cluster_only("an actor's process to kill")
def test_the_last_restart_used_up_leaves_every_attempt_failed(ray):
    @ray.remote(max_restarts=1)
    class Once:
        def pid(self):
            return os.getpid()

    a = Once.remote()
    actor_id = a._actor_id.hex()
    pid = ray.get(a.pid.remote())
    until(lambda: _attempts(actor_id), lambda r: _settled(r, 1))
    os.kill(pid, signal.SIGKILL)
    pid2 = _call_until_back(a.pid.remote, pid)
    until(lambda: _attempts(actor_id), lambda r: _settled(r, 2))
    os.kill(pid2, signal.SIGKILL)  # no restart left: the actor is dead
    rows = until(lambda: _attempts(actor_id), lambda r: [x.state for x in r] == ["FAILED"] * 2)
    assert [(r.attempt_number, r.state, r.error_type) for r in rows] == \
        [(0, "FAILED", "WORKER_DIED"), (1, "FAILED", "WORKER_DIED")]
    with pytest.raises(raylite.exceptions.RayActorError):
        ray.get(a.pid.remote(), timeout=30)
