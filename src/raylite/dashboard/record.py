"""Where `raylite start --head --dashboard-port` leaves its dashboard, for `raylite stop`.

    <temp>/raylite_dashboard   "<base url> <pid>"   written by the dashboard (--record),
                                                    removed by it when it ends

Found again by pid only, and signalled only while that pid is still a raylite dashboard
(its command line names raylite.dashboard): a reused pid is never signalled. Imports
nothing heavy, so `raylite stop` stays quick.
"""
from __future__ import annotations

import os
from typing import NamedTuple

from raylite import _private_files as private

RECORD = "raylite_dashboard"
_MODULE = b"raylite.dashboard"


class DashboardRecord(NamedTuple):
    path: str
    url: str
    pid: int


def path_in(temp: str) -> str:
    return os.path.join(temp, RECORD)


def write(temp: str, url: str, pid: int) -> None:
    private.write_text(path_in(temp), f"{url} {pid}\n")


def read(temp: str) -> DashboardRecord | None:
    path = path_in(temp)
    try:
        url, pid = (private.read_text(path) or "").split()[:2]
        return DashboardRecord(path, url, int(pid))
    except (OSError, ValueError):
        return None


def remove_if_mine(temp: str, pid: int) -> None:
    r = read(temp)
    if r is not None and r.pid == pid:
        try:
            os.unlink(r.path)
        except FileNotFoundError:
            pass


def is_dashboard(pid: int) -> bool:
    """Alive (not a zombie) and running raylite.dashboard."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X"):
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return _MODULE in f.read()
    except (OSError, IndexError):
        return False
