"""Every API test runs on every runtime: local mode and a real cluster."""
import pytest

import raylite

RUNTIMES = {
    "local": dict(local_mode=True, num_cpus=4, num_gpus=1, resources={"custom": 2}),
    "cluster": dict(num_cpus=4, num_gpus=1, resources={"custom": 2}),
}


@pytest.fixture(params=sorted(RUNTIMES))
def ray(request):
    """raylite, initialized on one runtime; shut down afterwards."""
    marker = request.node.get_closest_marker("cluster_only")
    if marker is not None and request.param == "local":
        pytest.skip(f"local mode runs each task at once on the caller's thread: {marker.args[0]}")
    raylite.init(**RUNTIMES[request.param])
    yield raylite
    raylite.shutdown()
