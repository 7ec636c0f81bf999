"""Every API test runs on every runtime: local mode, a real cluster on this machine, and
Ray itself (RAYLITE_RUNTIME=ray) when Ray is installed (`pip install raylite[ray]`).

`ray` is the raylite module, initialized on one runtime and shut down after the
test. `runtime_kwargs` gives the same runtimes' init() arguments to tests that
call init() themselves (with a namespace or a runtime_env, say).

A behaviour local mode cannot have (it runs each task at once on the caller's
thread, so nothing is ever still running) is marked `@pytest.mark.cluster_only(why)`.
A behaviour of raylite's own runtimes that Ray does differently (raylite's exact
messages, its limits, its options) is marked `@pytest.mark.raylite_only(why)`.

Ray takes seconds to start and idles at hundreds of MB, so one Ray instance serves the
whole test session (started by the first "ray" test, with the resources below, in a
temp dir of its own); raylite.init() on the "ray" runtime joins it and shutdown()
leaves it up (the actors the test created are killed). At the session's end Ray is
shut down, its processes must be gone, and its temp dir is removed.
"""
import importlib.util
import os
import shutil
import sys
import tempfile
import time

import psutil
import pytest

import raylite

RUNTIMES = {
    "local": dict(local_mode=True, num_cpus=4, num_gpus=1, resources={"custom": 2}),
    "cluster": dict(num_cpus=4, num_gpus=1, resources={"custom": 2}),
    "ray": dict(num_cpus=4, num_gpus=1, resources={"custom": 2}),
}


def _cluster_built() -> bool:
    try:
        return importlib.util.find_spec("raylite._runtime.cluster") is not None
    except ImportError:
        return False


def _ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="session")
def ray_instance():
    """One Ray for the test session (started on first use); stopped and checked at its end."""
    import ray

    temp = tempfile.mkdtemp(prefix="rl-ray-")
    # Ray's workers import the tests' modules (functions pickled by reference) as raylite's do
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join([here, os.path.dirname(here), *sys.path])
    ray.init(include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1",
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}},
             **RUNTIMES["ray"])
    pids = {p.pid for p in psutil.Process().children(recursive=True)}
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 10
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
    shutil.rmtree(temp, ignore_errors=True)
    assert not left, f"Ray's processes outlived ray.shutdown(): {sorted(left)}"


@pytest.fixture(params=sorted(RUNTIMES))
def runtime_kwargs(request, monkeypatch):
    """init() arguments for one runtime (the test calls init() and shutdown())."""
    if request.param == "cluster" and not _cluster_built():
        pytest.skip("cluster runtime not built yet")
    marker = request.node.get_closest_marker("cluster_only")
    if marker is not None and request.param == "local":
        pytest.skip(f"local mode runs each task at once on the caller's thread: {marker.args[0]}")
    if request.param == "ray":
        if not _ray_installed():
            pytest.skip("Ray is not installed: pip install 'raylite[ray]' runs these on Ray too")
        marker = request.node.get_closest_marker("raylite_only")
        if marker is not None:
            pytest.skip(f"raylite's own behaviour, not Ray's: {marker.args[0]}")
        request.getfixturevalue("ray_instance")
        monkeypatch.setenv("RAYLITE_RUNTIME", "ray")
    yield dict(RUNTIMES[request.param])
    raylite.shutdown()


@pytest.fixture
def ray(runtime_kwargs):
    """raylite, initialized on one runtime; shut down afterwards."""
    raylite.init(**runtime_kwargs)
    yield raylite
    raylite.shutdown()
