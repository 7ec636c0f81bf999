"""Every API test runs on every runtime: local mode and a real cluster on this machine.

`ray` is the raylite module, initialized on one runtime and shut down after the
test. `runtime_kwargs` gives the same runtimes' init() arguments to tests that
call init() themselves (with a namespace or a runtime_env, say).

A behaviour local mode cannot have (it runs each task at once on the caller's
thread, so nothing is ever still running) is marked `@pytest.mark.cluster_only(why)`.
"""
import importlib.util

import pytest

import raylite

RUNTIMES = {
    "local": dict(local_mode=True, num_cpus=4, num_gpus=1, resources={"custom": 2}),
    "cluster": dict(num_cpus=4, num_gpus=1, resources={"custom": 2}),
}


def _cluster_built() -> bool:
    try:
        return importlib.util.find_spec("raylite._runtime.cluster") is not None
    except ImportError:
        return False


@pytest.fixture(params=sorted(RUNTIMES))
def runtime_kwargs(request):
    """init() arguments for one runtime (the test calls init() and shutdown())."""
    if request.param == "cluster" and not _cluster_built():
        pytest.skip("cluster runtime not built yet")
    marker = request.node.get_closest_marker("cluster_only")
    if marker is not None and request.param == "local":
        pytest.skip(f"local mode runs each task at once on the caller's thread: {marker.args[0]}")
    yield dict(RUNTIMES[request.param])
    raylite.shutdown()


@pytest.fixture
def ray(runtime_kwargs):
    """raylite, initialized on one runtime; shut down afterwards."""
    raylite.init(**runtime_kwargs)
    yield raylite
    raylite.shutdown()
