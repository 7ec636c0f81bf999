"""joblib on raylite: register_ray() adds the "ray" backend (Ray's ray.util.joblib).

    from raylite.util.joblib import register_ray
    register_ray()
    with joblib.parallel_backend("ray"):
        Parallel(n_jobs=4)(delayed(f)(i) for i in range(100))

The backend runs joblib's batches on a raylite.util.multiprocessing.Pool of
`n_jobs` actors (n_jobs=-1: one per CPU of the cluster, and never more than
the cluster has). joblib itself is not a dependency of raylite: importing
this module works without it, register_ray() asks for it.
"""
from __future__ import annotations


def register_ray() -> None:
    """Registers the "ray" joblib backend, which runs Parallel's work on the raylite cluster."""
    try:
        from joblib.parallel import register_parallel_backend
    except ImportError as e:
        raise ImportError("register_ray() needs joblib: pip install joblib") from e
    from .backend import RayliteBackend

    register_parallel_backend("ray", RayliteBackend)


__all__ = ["register_ray"]
