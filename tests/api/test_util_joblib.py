"""joblib's "ray" backend (raylite.util.joblib.register_ray) on both runtimes."""
import os
import sys

import pytest

joblib = pytest.importorskip("joblib")  # a test dependency (pyproject's test extra)
from joblib import Parallel, delayed  # noqa: E402

from raylite.util.joblib import register_ray  # noqa: E402


def pid_and_square(i):
    import os
    return os.getpid(), i * i


def fails_on_seven(i):
    if i == 7:
        raise KeyError(f"item {i}")
    return i


@pytest.fixture
def backend(ray):
    register_ray()
    yield ray


def test_parallel_runs_on_the_cluster(backend, runtime_kwargs):
    with joblib.parallel_backend("ray"):
        out = Parallel(n_jobs=2)(delayed(pid_and_square)(i) for i in range(60))
    assert [sq for _, sq in out] == [i * i for i in range(60)]
    pids = {pid for pid, _ in out}
    if runtime_kwargs.get("local_mode"):
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids and 1 <= len(pids) <= 2  # the pool's two workers
    assert Parallel(n_jobs=2, backend="ray")(delayed(abs)(-i) for i in range(5)) == \
        [0, 1, 2, 3, 4]


def test_errors_keep_their_type(backend):
    with joblib.parallel_backend("ray"):
        with pytest.raises(KeyError, match="item 7"):
            Parallel(n_jobs=2)(delayed(fails_on_seven)(i) for i in range(20))
        # the backend works again after a failed call
        assert Parallel(n_jobs=2)(delayed(fails_on_seven)(i) for i in range(3)) == [0, 1, 2]


def test_n_jobs_counts_the_clusters_cpus(backend):
    with joblib.parallel_backend("ray"):
        assert joblib.effective_n_jobs(-1) == 4  # every CPU of the test cluster
        assert joblib.effective_n_jobs(-2) == 3
        assert joblib.effective_n_jobs(100) == 4  # never more workers than CPUs
        assert joblib.effective_n_jobs(1) == 1
        with pytest.raises(ValueError, match="n_jobs == 0"):
            Parallel(n_jobs=0)(delayed(abs)(1) for _ in range(2))
        assert Parallel(n_jobs=-1)(delayed(abs)(-i) for i in range(9)) == list(range(9))


def test_register_ray_without_joblib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "joblib.parallel", None)
    with pytest.raises(ImportError, match="pip install joblib"):
        register_ray()


def test_scikit_learn_under_the_backend(backend):
    pytest.importorskip("sklearn")  # optional: not in the test extra (scipy is large)
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    X, y = make_classification(n_samples=120, n_features=5, random_state=0)
    with joblib.parallel_backend("ray"):
        scores = cross_val_score(LogisticRegression(), X, y, cv=4, n_jobs=2)
    assert len(scores) == 4 and all(0.5 < s <= 1.0 for s in scores)
