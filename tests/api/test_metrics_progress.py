"""raylite.util.metrics and raylite.experimental.tqdm_ray in drivers, tasks and actors, on
every runtime: local mode keeps the values in the process and draws bars there; a cluster
sums them in the GCS and its driver draws the workers' bars."""
import time
import uuid

import pytest

from raylite.experimental.tqdm_ray import tqdm
from raylite.util.metrics import Counter, Gauge, Histogram


def _wait_for(get, want, timeout=30.0):
    """get() until it returns `want` (or the last value after `timeout` s)."""
    deadline = time.monotonic() + timeout
    got = get()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = get()
    return got


@pytest.mark.raylite_only("reads the values back through raylite's own state fetch")
def test_metrics_from_driver_tasks_and_actors_add_up(ray):
    from raylite.util.state.fetch import ask_metrics, resolve

    name = f"api_calls_{uuid.uuid4().hex[:8]}"
    gauge, hist = name + "_level", name + "_seconds"

    @ray.remote
    def work(i):
        Counter(name, "calls", ("where",)).inc(tags={"where": "task"})
        Histogram(hist, "time", [0.1, 1.0]).observe(0.5)
        return i

    @ray.remote
    class Meter:
        def go(self):
            Counter(name, "calls", ("where",)).inc(2, tags={"where": "actor"})
            Gauge(gauge).set(5)
            return 1

    assert ray.get([work.remote(i) for i in range(3)]) == [0, 1, 2]
    m = Meter.remote()
    assert ray.get(m.go.remote()) == 1
    Counter(name, "calls", ("where",)).set_default_tags({"where": "driver"}).inc()

    def values():
        series, _ = ask_metrics(resolve(), 10.0)
        return {(s.name, s.tags): (s.value, s.count, s.buckets) for s in series
                if s.name.startswith(name)}

    assert _wait_for(values, {
        (name, (("where", "task"),)): (3.0, 0, ()),
        (name, (("where", "actor"),)): (2.0, 0, ()),
        (name, (("where", "driver"),)): (1.0, 0, ()),
        (gauge, ()): (5.0, 0, ()),
        (hist, ()): (1.5, 3, (0, 3, 0)),
    }) == {
        (name, (("where", "task"),)): (3.0, 0, ()),
        (name, (("where", "actor"),)): (2.0, 0, ()),
        (name, (("where", "driver"),)): (1.0, 0, ()),
        (gauge, ()): (5.0, 0, ()),
        (hist, ()): (1.5, 3, (0, 3, 0)),
    }


def test_a_bad_metric_call_in_a_task_raises_there(ray):
    @ray.remote
    def bad():
        Counter("api_bad", tag_keys=("k",)).inc(1, tags={"other": "x"})

    with pytest.raises(ValueError, match="Unrecognized tag key"):
        ray.get(bad.remote())


@pytest.mark.raylite_only("raylite's driver draws the bars; Ray's tqdm_ray is Ray's own")
def test_progress_bars_of_tasks_and_actors_are_drawn_by_the_driver(ray, capfd):
    tag = uuid.uuid4().hex[:6]

    @ray.remote
    def work(n):
        for _ in tqdm(range(n), desc=f"task-{tag}"):
            pass
        print(f"printed-{tag}")
        return n

    @ray.remote
    class Loader:
        def load(self):
            bar = tqdm(total=4, desc=f"actor-{tag}", position=0)
            for _ in range(4):
                bar.update(1)
            bar.close()
            return 4

    assert ray.get(work.remote(5)) == 5
    assert ray.get(Loader.remote().load.remote()) == 4
    seen = {"out": "", "err": ""}

    def drawn():
        got = capfd.readouterr()
        seen["out"] += got.out
        seen["err"] += got.err
        return (f"task-{tag}: " in seen["err"] and "5/5" in seen["err"] and
                f"actor-{tag}: " in seen["err"] and "4/4" in seen["err"] and
                f"printed-{tag}" in seen["out"])

    assert _wait_for(drawn, True), seen
    finals = [line for line in seen["err"].splitlines() if "100%|" in line and tag in line]
    assert len(finals) == 2, seen["err"]                  # each bar's last line, whole
    assert all(line.startswith(("task-", "actor-")) for line in finals)
    printed = [line for line in seen["out"].splitlines() if f"printed-{tag}" in line]
    assert len(printed) == 1 and printed[0].endswith(f"printed-{tag}")  # the output line whole


@pytest.mark.cluster_only("local mode has no workers and no log files")
@pytest.mark.raylite_only("raylite's own log files (util.state.get_log by pid and actor id)")
def test_a_workers_output_is_readable_after_its_task(ray):
    import os

    from raylite.util.state import RayStateApiException, get_log, list_logs

    tag = uuid.uuid4().hex[:6]

    @ray.remote
    def speak():
        print(f"task-said-{tag}")
        return os.getpid()

    @ray.remote
    class Speaker:
        def speak(self):
            import sys
            print(f"actor-said-{tag}", file=sys.stderr, flush=True)
            return 1

    pid = ray.get(speak.remote())
    a = Speaker.remote()
    assert ray.get(a.speak.remote()) == 1

    def said(**which) -> bool:   # the worker's pipe reader writes the file a moment later
        try:
            return "".join(get_log(tail=-1, **which)).count(f"-said-{tag}") == 1
        except RayStateApiException:
            return False

    assert _wait_for(lambda: said(pid=pid), True)
    assert _wait_for(lambda: said(actor_id=a._actor_id.hex(), suffix="err"), True)
    assert any(n.endswith(f"-{pid}.out") for n in list_logs()["worker"])
