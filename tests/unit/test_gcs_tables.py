"""GcsTables, the head's pure actor/job bookkeeping: deaths and fate sharing."""
import pickle

from raylite._gcs.tables import GcsTables
from raylite._protocol import messages as m
from raylite._runtime.base import ActorMeta


def _spec(actor_id, owner="w:1", detached=False, max_restarts=0, job=b"j", name=None):
    return m.ActorSpec(actor_id=actor_id, class_id=b"c", cls=b"", meta=ActorMeta("A", {}, False),
                       args=b"", inlined={}, owner=owner, job_id=job, namespace="ns", name=name,
                       detached=detached, demand={}, placement={}, max_restarts=max_restarts,
                       max_concurrency=None, env_vars=None, max_task_retries=0)


def test_owned_by_names_the_live_non_detached_actors_a_process_created():
    t = GcsTables()
    for spec in (_spec(b"child"), _spec(b"pinned", detached=True), _spec(b"other", owner="w:2"),
                 _spec(b"gone")):
        t.register_actor(spec, False)
    t.actor_started(b"child", b"wc", "w:3")
    t.actor_died(b"gone", b"why", may_restart=False)
    assert t.owned_by("w:1") == [b"child"]   # pending ones too; never detached or dead ones
    assert t.owned_by("w:2") == [b"other"]
    assert t.owned_by("") == [] and t.owned_by("w:9") == []


def test_death_is_kept_while_restarting_and_replaced_by_the_final_one():
    t = GcsTables()
    t.register_actor(_spec(b"a", max_restarts=1), False)
    t.actor_started(b"a", b"w1", "w:1")
    crash = pickle.dumps("crashed")
    assert t.actor_died(b"a", crash, may_restart=True) == "RESTARTING"
    assert t.actors[b"a"].death == crash and t.actors[b"a"].address is None
    t.actor_started(b"a", b"w2", "w:2")
    assert t.actors[b"a"].state == "ALIVE" and t.actors[b"a"].death == crash
    assert t.actor_died(b"a", b"exit", may_restart=False) == "DEAD"
    assert t.actors[b"a"].death == b"exit"


def test_finish_job_lists_only_its_live_non_detached_actors():
    t = GcsTables()
    t.add_job(b"j", "ns", 1)
    for spec in (_spec(b"a"), _spec(b"d", detached=True), _spec(b"x", job=b"k")):
        t.register_actor(spec, False)
    assert t.finish_job(b"j") == [b"a"] and not t.jobs[b"j"].alive
