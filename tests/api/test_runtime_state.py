"""The runtimes' state(): every record the cluster (or local mode) holds, on both runtimes."""
import pytest

import raylite


def _state():
    return raylite._runtime.current().state()


@pytest.mark.raylite_only("on Ray, state() has Ray's nodes and this job; Ray's own state API shows its tasks, actors and objects")
def test_a_running_task_a_live_actor_and_a_put_object_appear(ray):
    @ray.remote
    class Counter:
        def ping(self):
            return 1

    @ray.remote
    def look():
        return _state()   # while this task runs (in local mode: on the caller's thread)

    counter = Counter.remote()
    assert ray.get(counter.ping.remote()) == 1
    kept = ray.put("kept")
    snap = ray.get(look.remote())
    [task] = [t for t in snap.tasks if t.name == "look"]
    assert task.state == "RUNNING" and task.attempt == 0 and task.worker
    [actor] = [a for a in snap.actors if a.class_name == "Counter"]
    assert actor.state == "ALIVE" and actor.death is None and actor.actor_id == counter._actor_id.hex()
    [obj] = [o for o in snap.objects if o.object_id == kept.hex()]
    assert obj.state == "INLINE" and obj.local_refs == 1 and obj.owner == task.owner
    [node] = snap.nodes
    assert node.alive and node.resources_total["CPU"] == 4 and node.resources_available["CPU"] <= 3
    assert [j.alive for j in snap.jobs] == [True]

    after = _state()   # from the driver, once the task is done
    assert not [t for t in after.tasks if t.name == "look"]
    assert kept.hex() in [o.object_id for o in after.objects]


@pytest.mark.raylite_only("on Ray, state() has Ray's nodes and this job; Ray's own state API shows its actors")
def test_a_killed_actor_is_dead_with_the_reason(ray):
    @ray.remote
    class Victim:
        def ping(self):
            return 1

    v = Victim.remote()
    ray.get(v.ping.remote())
    ray.kill(v)
    [actor] = [a for a in _state().actors if a.class_name == "Victim"]
    assert actor.state == "DEAD" and "kill()" in actor.death
