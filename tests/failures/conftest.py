import pytest

import raylite


@pytest.fixture
def cluster():
    """A fresh driver-started cluster with 2 CPUs, shut down after the test."""
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()
