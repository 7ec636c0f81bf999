"""Every API test runs on every runtime: local mode, a real cluster on this machine, and
Ray itself (RAYLITE_RUNTIME=ray) when Ray is installed (`pip install raylite[ray]`).

`ray` is the raylite module, initialized on one runtime and shut down after the
test. `runtime_kwargs` gives the same runtimes' init() arguments to tests that
call init() themselves (with a namespace or a runtime_env, say).

A behaviour local mode cannot have (it runs each task at once on the caller's
thread, so nothing is ever still running) is marked `@pytest.mark.cluster_only(why)`.
A behaviour of raylite's own runtimes that Ray does differently (raylite's exact
messages, its limits, its options) is marked `@pytest.mark.raylite_only(why)`.

Ray takes seconds to start and idles at hundreds of MB, so one Ray instance serves all
the API tests of a session (started by the first "ray" test, with the resources below,
in a temp dir of its own); raylite.init() on the "ray" runtime joins it and shutdown()
leaves it up (the actors the test created are killed). After the last test of this
directory (or at the session's end) Ray is shut down, its processes must be gone, and
its temp dir is removed.
"""
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import warnings

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


class _SharedRay:
    """The one Ray of the API tests: started by the first test that asks, stopped (and its
    processes checked gone) after the last test of this directory, or at the session's end."""

    def __init__(self):
        self.ray = self.temp = None
        self.pids: set = set()

    def start(self):
        if self.ray is None:
            import ray

            self.temp = tempfile.mkdtemp(prefix="rl-ray-")
            # Ray's workers import the tests' modules (functions pickled by reference) as raylite's do
            here = os.path.dirname(os.path.abspath(__file__))
            path = os.pathsep.join([here, os.path.dirname(here), *sys.path])
            ray.init(include_dashboard=False, _temp_dir=self.temp, _node_ip_address="127.0.0.1",
                     log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}},
                     **RUNTIMES["ray"])
            self.ray = ray
            self.pids = {p.pid for p in psutil.Process().children(recursive=True)}
        elif not self._idle(timeout=20):
            # An earlier test left work that holds resources (a task still running, a group
            # not yet removed): a test asking for them would wait forever, so Ray restarts.
            warnings.warn(f"the shared Ray still held {self._held()} 20 s after the last test "
                          "ended: restarted it")
            self.stop()
            return self.start()
        return self.ray

    def _held(self) -> dict:
        total, free = self.ray.cluster_resources(), self.ray.available_resources()
        return {k: total[k] - free.get(k, 0.0) for k in _BASE if free.get(k, 0.0) < total.get(k, 0.0)}

    def _idle(self, timeout: float) -> bool:
        """True once every CPU, GPU and custom unit of the shared Ray is free again (Ray
        reports freed resources a little after a task or actor ends)."""
        deadline = time.monotonic() + timeout
        while self._held():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self):
        if self.ray is None:
            return
        ray, self.ray = self.ray, None
        ray.shutdown()
        deadline = time.monotonic() + 10
        left = self.pids
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = {p for p in self.pids if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        shutil.rmtree(self.temp, ignore_errors=True)
        assert not left, f"Ray's processes outlived ray.shutdown(): {sorted(left)}"


_BASE = ("CPU", "GPU", "custom")  # the resources the shared Ray starts with (RUNTIMES["ray"])
_SHARED = _SharedRay()


@pytest.fixture(scope="session")
def _shared_ray():
    yield _SHARED
    _SHARED.stop()  # a run that ends inside this directory


@pytest.fixture
def ray_instance(_shared_ray):
    """The API tests' one Ray (started on first use, kept up between tests)."""
    return _shared_ray.start()


@pytest.hookimpl(trylast=True)  # after the test's fixtures (its raylite.shutdown()) are torn down
def pytest_runtest_teardown(item, nextitem):
    """Stops the shared Ray after the last test of this directory: the rest of the suite runs
    without Ray's processes (some tests count every child process)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if nextitem is None or os.path.dirname(str(nextitem.path)) != here:
        _SHARED.stop()


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
