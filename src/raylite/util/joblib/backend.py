"""RayliteBackend: a joblib parallel backend over raylite.util.multiprocessing.Pool.

joblib hands each batch of calls to `submit`, which PoolManagerMixin turns
into Pool.apply_async with joblib's traceback-capturing wrapper; the Pool's
callback thread reports completion back to joblib. AutoBatchingMixin sizes
the batches from their measured duration, as for joblib's own process pool.
A Parallel call configures a fresh Pool and terminates it at the end.
"""
from __future__ import annotations

from typing import Any

from joblib._parallel_backends import (AutoBatchingMixin, ParallelBackendBase,
                                       PoolManagerMixin)

from ... import _api
from ..multiprocessing import Pool


class RayliteBackend(PoolManagerMixin, AutoBatchingMixin, ParallelBackendBase):
    supports_retrieve_callback = True
    supports_timeout = True
    supports_return_generator = False
    supports_sharedmem = False
    uses_threads = False
    default_n_jobs = -1

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """n_jobs, with -1 meaning every CPU of the cluster (-2 all but one...), at most them all."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        cpus = max(int(_api.cluster_resources().get("CPU", 1)), 1)
        if n_jobs is None:
            n_jobs = self.default_n_jobs
        if n_jobs < 0:
            n_jobs = max(cpus + 1 + n_jobs, 1)
        return min(n_jobs, cpus)

    def configure(self, n_jobs: int = 1, parallel: Any = None, prefer: Any = None,
                  require: Any = None, **backend_kwargs: Any) -> int:
        n_jobs = self.effective_n_jobs(n_jobs)
        self._pool = Pool(processes=n_jobs)
        self.parallel = parallel
        return n_jobs

    def terminate(self) -> None:
        super().terminate()
        self.reset_batch_stats()
