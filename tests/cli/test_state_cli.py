"""`raylite list|get|summary|logs` against a real cluster (loopback, a private temp dir).

One head lives for the module, and one driver holding a named actor, two running tasks, one
waiting task and three put objects; the commands run as a user would (subprocesses, no init()).
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

DRIVER = """
    import sys, time
    import raylite
    raylite.init(address="auto")

    @raylite.remote
    class Counter:
        def ping(self):
            return 1

    @raylite.remote
    def slow():
        time.sleep(60)

    c = Counter.options(name="counter").remote()
    raylite.get(c.ping.remote())
    tasks = [slow.remote() for _ in range(3)]
    refs = [raylite.put(b"x" * 200_000) for _ in range(3)]
    print("READY", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def rl(temp, *args, check=True):
    out = subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", str(temp)],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The temp dir of a head with 2 CPUs (so one of the 3 tasks waits) and the driver above."""
    temp = tmp_path_factory.mktemp("state") / "t"
    out = rl(temp, "start", "--head", "--port", "0", "--num-cpus", "2", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    try:
        assert driver.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + 20  # both tasks pushed to their workers
        while "RUNNING" not in rl(temp, "summary", "tasks").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        yield temp
    finally:
        driver.stdin.close()
        try:
            driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        driver.stdout.close()
        rl(temp, "stop", check=False)
        rl(temp, "stop", "--force", check=False)


def rows(temp, *args):
    return json.loads(rl(temp, "list", *args, "--format", "json").stdout)


def test_list_every_kind_as_a_table(cluster):
    out = rl(cluster, "list", "actors").stdout
    assert out.splitlines()[0].split()[:3] == ["ACTOR_ID", "CLASS_NAME", "STATE"]
    assert "Counter" in out and "ALIVE" in out and "counter" in out
    assert "slow" in rl(cluster, "list", "tasks").stdout
    assert "ALIVE" in rl(cluster, "list", "nodes").stdout
    assert "WORKER" in rl(cluster, "list", "workers").stdout
    assert "DRIVER" in rl(cluster, "list", "jobs").stdout
    out = rl(cluster, "list", "placement-groups")
    assert out.stdout.split() == ["PLACEMENT_GROUP_ID", "NAME", "CREATOR_JOB_ID", "STATE"] \
        and not out.stderr


def test_actor_rows_have_rays_fields_and_its_workers_pid(cluster):
    [actor] = rows(cluster, "actors", "--detail")
    assert actor["class_name"] == "Counter" and actor["state"] == "ALIVE"
    assert actor["name"] == "counter" and actor["num_restarts"] == 0
    [worker] = [w for w in rows(cluster, "workers", "--detail") if w["actor_id"] == actor["actor_id"]]
    assert actor["pid"] == worker["pid"] and actor["node_id"] == worker["node_id"]


def test_filter_applies_before_the_limit(cluster):
    every = rows(cluster, "tasks", "--limit", "-1", "--filter", "name=slow")
    running = [t for t in every if t["state"] == "RUNNING"]
    assert len(running) == 2 and len(every) == 3  # one waits for a CPU
    # the waiting task is listed first or last; a filter must still find both running ones
    out = rl(cluster, "list", "tasks", "--filter", "state=running", "--limit", "2",
             "--format", "json")
    assert sorted(t["task_id"] for t in json.loads(out.stdout)) == \
        sorted(t["task_id"] for t in running)
    assert out.stderr == ""  # nothing was left out
    assert [t["state"] for t in rows(cluster, "tasks", "--filter", "state!=RUNNING",
                                     "--filter", "name=slow")] == ["PENDING_NODE_ASSIGNMENT"]


def test_finished_tasks_are_listed_with_rays_fields_and_got_by_id(cluster):
    [ping] = rows(cluster, "tasks", "--filter", "state=FINISHED", "--filter", "type=ACTOR_TASK",
                  "--detail")
    assert (ping["name"], ping["type"], ping["error_type"]) == ("Counter.ping", "ACTOR_TASK", None)
    assert ping["start_time_ms"] <= ping["end_time_ms"] and ping["worker_pid"] > 0
    out = rl(cluster, "list", "tasks", "--filter", "state=FINISHED").stdout
    assert out.splitlines()[0].split()[:4] == ["TASK_ID", "ATTEMPT_NUMBER", "NAME", "STATE"]
    got = json.loads(rl(cluster, "get", "tasks", ping["task_id"], "--format", "json").stdout)
    assert got["task_id"] == ping["task_id"] and got["events"][-1]["state"] == "FINISHED"


def test_timeline_writes_a_chrome_trace(cluster, tmp_path):
    path = tmp_path / "trace.json"
    out = rl(cluster, "timeline", "--output", str(path))
    assert "Trace of 4 task(s) written to" in out.stdout  # the actor's creation, its call
    events = json.loads(path.read_text())                 # and two running tasks
    spans = sorted(e["name"] for e in events if e["ph"] == "X")
    assert spans == ["Counter.__init__", "Counter.ping", "slow", "slow"]
    assert json.loads(rl(cluster, "timeline", "--output", "-").stdout)[0]["ph"] == "M"
    out = rl(cluster, "timeline", "--output", str(tmp_path / "no" / "such.json"), check=False)
    assert out.returncode == 1 and "cannot write" in out.stderr


def test_limit_says_how_many_were_left_out(cluster):
    out = rl(cluster, "list", "objects", "--limit", "1", "--format", "json")
    assert len(json.loads(out.stdout)) == 1
    total = len(rows(cluster, "objects", "--limit", "-1"))
    assert f"{total - 1} more matched but were left out by the limit (1)" in out.stderr


def test_get_prints_every_field_and_fails_on_an_unknown_id(cluster):
    [actor] = rows(cluster, "actors")
    out = rl(cluster, "get", "actors", actor["actor_id"], "--format", "json").stdout
    assert json.loads(out)["is_detached"] is False
    out = rl(cluster, "get", "tasks", "00" * 16, check=False)
    assert out.returncode == 1 and "no task with id" in out.stderr


def test_summaries(cluster):
    out = rl(cluster, "summary", "tasks").stdout
    assert "Tasks: 5 (1 actor tasks, 1 actor creations)" in out and "RUNNING: 2" in out
    assert "Counter" in rl(cluster, "summary", "actors").stdout
    data = json.loads(rl(cluster, "summary", "objects", "--format", "json").stdout)
    shm = data["cluster"]["summary"]["SHARED_MEMORY"]
    assert shm["total_objects"] == 3 and shm["total_size_mb"] == pytest.approx(0.57, abs=0.01)


def test_bad_filter_and_yaml_without_pyyaml(cluster):
    out = rl(cluster, "list", "tasks", "--filter", "nosuch=1", check=False)
    assert out.returncode == 1 and "the columns are:" in out.stderr
    out = rl(cluster, "list", "tasks", "--format", "yaml", check=False)
    try:
        import yaml
    except ImportError:
        assert out.returncode == 1 and "pip install pyyaml" in out.stderr
    else:
        assert out.returncode == 0 and "slow" in [row["name"] for row in yaml.safe_load(out.stdout)]


def test_logs_lists_and_reads_the_head_log(cluster):
    out = rl(cluster, "logs").stdout
    assert "node:" in out and "raylite_head.log" in out
    path = os.path.join(str(cluster), "raylite_head.log")
    size = os.path.getsize(path)
    out = rl(cluster, "logs", "raylite_head.log", "--tail", "-1").stdout
    assert len(out.encode()) >= size
    out = rl(cluster, "logs", "../raylite_current_cluster", check=False)
    assert out.returncode == 1 and "no log file" in out.stderr
    out = rl(cluster, "logs", "--actor-id", "ab" * 16, check=False)
    assert out.returncode == 1 and "no live actor" in out.stderr
    out = rl(cluster, "logs", "--task-id", "ab" * 16, check=False)
    assert out.returncode == 1 and "no task 'abababab" in out.stderr


def test_no_cluster_says_how_to_start_one(tmp_path):
    temp = tmp_path / "empty"
    out = rl(temp, "list", "nodes", check=False)
    assert out.returncode == 1 and "raylite start --head" in out.stderr
