"""raylite.util.state on the ray runtime (RAYLITE_RUNTIME=ray): nodes, jobs, actors and
placement groups answer from Ray's GCS; what only Ray's state API (its dashboard) can read is
a clear error naming what to install and which Ray call to make instead
(raylite/util/state/on_ray.py). Run on Ray only (skipped when Ray is not installed)."""
import importlib.util
import time
import warnings

import pytest

import raylite
from raylite.util import state

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed: pip install 'raylite[ray]'")


@pytest.fixture
def ray(request, monkeypatch):
    request.getfixturevalue("ray_instance")  # the API tests' one Ray
    monkeypatch.setenv("RAYLITE_RUNTIME", "ray")
    with warnings.catch_warnings():  # joining: "the Ray job keeps its namespace" (said once)
        warnings.simplefilter("ignore")
        raylite.init(namespace="state-ns")
    assert raylite._runtime.current().name == "ray"
    yield raylite
    raylite.shutdown()


@raylite.remote
class StateProbe:
    def pid(self):
        import os

        return os.getpid()


def test_nodes_and_jobs_come_from_rays_gcs(ray, ray_instance):
    [node] = state.list_nodes(detail=True)
    assert node.state == "ALIVE" and node.is_head_node and node.resources_total["CPU"] == 4
    assert node.node_id == ray_instance.get_runtime_context().get_node_id()
    assert state.get_node(node.node_id).node_id == node.node_id
    job_id = raylite.get_runtime_context().get_job_id()
    [job] = [j for j in state.list_jobs(detail=True) if j.job_id == job_id]
    assert job.status == "RUNNING" and job.ray_namespace == "state-ns"
    assert state.get_job(job_id).job_id == job_id and state.get_job("ffffffff") is None


def test_actors_with_their_namespace_pid_node_and_death(ray):
    a = StateProbe.options(name="probe").remote()
    pid = raylite.get(a.pid.remote())
    [row] = state.list_actors(filters=[("class_name", "=", "StateProbe"), ("state", "=", "ALIVE")])
    assert (row.name, row.ray_namespace, row.pid) == ("probe", "state-ns", pid)
    assert row.node_id == state.list_nodes()[0].node_id
    got = state.get_actor(row.actor_id)
    assert got.num_restarts == 0 and got.is_detached is False
    raylite.kill(a)
    deadline = time.monotonic() + 20
    while state.get_actor(row.actor_id).state != "DEAD" and time.monotonic() < deadline:
        time.sleep(0.1)
    dead = state.get_actor(row.actor_id)
    assert dead.state == "DEAD" and "ray.kill" in dead.death_cause["error_message"]
    counts = state.summarize_actors()["cluster"]["summary"]["StateProbe"]["state_counts"]
    assert counts.get("DEAD", 0) >= 1


def test_placement_groups_listed_and_got(ray):
    from raylite.util.placement_group import placement_group, remove_placement_group

    pg = placement_group([{"CPU": 1}], name="state-pg")
    assert pg.wait(30)
    [row] = state.list_placement_groups(filters=[("name", "=", "state-pg")])
    assert (row.placement_group_id, row.state) == (pg.id.hex(), "CREATED")
    assert state.get_placement_group(pg.id.hex()).placement_group_id == pg.id.hex()
    remove_placement_group(pg)


@pytest.mark.parametrize("call, args", [
    ("list_tasks", ()), ("get_task", ("00" * 24,)), ("summarize_tasks", ()),
    ("list_objects", ()), ("get_objects", ("00" * 28,)), ("summarize_objects", ()),
    ("list_workers", ()), ("get_worker", ("00" * 28,)), ("list_logs", ()), ("get_log", ())])
def test_what_only_rays_state_api_reads_is_a_clear_error(ray, call, args):
    with pytest.raises(state.RayStateApiException) as e:
        result = getattr(state, call)(*args)
        list(result) if call == "get_log" else None
    text = str(e.value)
    assert f"raylite.util.state.{call}()" in text and 'pip install "ray[default]"' in text
    assert f"ray.util.state.{call}()" in text and "dashboard" in text


def test_logs_error_names_rays_log_directory(ray):
    session = raylite._runtime.current().info().session_dir
    with pytest.raises(state.RayStateApiException, match=f"{session}/logs"):
        state.list_logs()


def test_timeline_is_rays(ray):
    raylite.get(raylite.remote(lambda: 1).remote())
    events = raylite.timeline()
    assert events and all("ph" in e and "ts" in e for e in events)


def test_inside_a_task_too(ray):
    @raylite.remote
    def listed():
        from raylite.util import state as st

        return len(st.list_nodes()), [j.job_id for j in st.list_jobs()]

    nodes, jobs = raylite.get(listed.remote())
    assert nodes == 1 and raylite.get_runtime_context().get_job_id() in jobs
