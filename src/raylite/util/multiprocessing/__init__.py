"""raylite.util.multiprocessing: the standard library's Pool API on raylite (Ray's module of that name)."""
from multiprocessing import TimeoutError

from ._results import AsyncResult
from ._worker import RemoteTraceback
from .pool import Pool

__all__ = ["AsyncResult", "Pool", "RemoteTraceback", "TimeoutError"]
