"""Resource arithmetic shared by every runtime and the node scheduler (a leaf module).

A resource set is a dict {name: amount}: "CPU", "GPU", "memory",
"object_store_memory" and custom names. Amounts are floats; a demand
lists only what it needs.
"""
from __future__ import annotations

import os

_EPS = 1e-9


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def default_object_store_memory() -> int:
    """30% of RAM, capped by the size of /dev/shm (Ray's default)."""
    want = int(physical_memory() * 0.3)
    try:
        st = os.statvfs("/dev/shm")
        want = min(want, int(st.f_bsize * st.f_blocks * 0.95))
    except OSError:
        pass
    return want


def node_total(num_cpus: float | None, num_gpus: float | None, resources: dict | None,
               object_store_memory: int | None, ip: str = "127.0.0.1") -> dict[str, float]:
    """A node's total resources, defaults filled in as Ray does."""
    cpus = (os.cpu_count() or 1) if num_cpus is None else num_cpus
    store = default_object_store_memory() if object_store_memory is None else object_store_memory
    total: dict[str, float] = {"CPU": float(cpus)}
    if num_gpus:
        total["GPU"] = float(num_gpus)
    total["memory"] = float(max(physical_memory() * 0.7 - store, 0) // 1)
    total["object_store_memory"] = float(store)
    total[f"node:{ip}"] = 1.0
    for k, v in (resources or {}).items():
        total[k] = float(v)
    return total


def fits(demand: dict[str, float], available: dict[str, float]) -> bool:
    for k, v in demand.items():
        if available.get(k, 0.0) + _EPS < v:
            return False
    return True


def missing(demand: dict[str, float], available: dict[str, float]) -> dict[str, tuple[float, float]]:
    """{name: (wanted, have)} for each resource the demand exceeds."""
    return {k: (v, available.get(k, 0.0)) for k, v in demand.items()
            if available.get(k, 0.0) + _EPS < v}


def subtract(pool: dict[str, float], demand: dict[str, float]) -> None:
    for k, v in demand.items():
        pool[k] = pool.get(k, 0.0) - v


def add(pool: dict[str, float], demand: dict[str, float]) -> None:
    for k, v in demand.items():
        pool[k] = pool.get(k, 0.0) + v


def describe(demand: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(demand.items())) + "}"


# -- placement groups: a bundle's resources under their own names --------------------------
# A committed bundle (index i of group g, g in hex) adds to its node each of its resources
# twice, as Ray names them: "CPU_group_i_g" (that bundle) and "CPU_group_g" (any bundle of
# the group on that node, the sum of its bundles there), plus "bundle_group_i_g" and
# "bundle_group_g" (BUNDLE_UNITS each), so even a task needing nothing is pinned to the
# bundle. The node's own "CPU" went down by the bundle's amount when it was reserved.
# A task in the group asks for the renamed resources (`in_group`) and the node's scheduler
# grants them as any other resource: the accounting is the scheduler's, exact.
BUNDLE_UNITS = 1000.0
BUNDLE_MARK = 0.001          # what a task in a group takes of "bundle_group_*"


def bundle_resources(group: str, index: int, bundle: dict[str, float]) -> dict[str, float]:
    """What committing bundle `index` of group `group` (hex id) adds to its node."""
    out = {f"bundle_group_{index}_{group}": BUNDLE_UNITS, f"bundle_group_{group}": BUNDLE_UNITS}
    for k, v in bundle.items():
        out[f"{k}_group_{index}_{group}"] = v
        out[f"{k}_group_{group}"] = v
    return out


def in_group(demand: dict[str, float], group: str, index: int) -> dict[str, float]:
    """`demand` renamed into bundle `index` of group `group` (-1: any bundle of it): an
    indexed task takes both the bundle's and the group's names, so that both stay exact."""
    out = {f"bundle_group_{group}": BUNDLE_MARK}
    if index >= 0:
        out[f"bundle_group_{index}_{group}"] = BUNDLE_MARK
    for k, v in demand.items():
        out[f"{k}_group_{group}"] = v
        if index >= 0:
            out[f"{k}_group_{index}_{group}"] = v
    return out


def group_of(demand: dict[str, float]) -> str | None:
    """The group (hex id) a demand made by `in_group` is in, or None."""
    for k in demand:
        if k.startswith("bundle_group_"):
            return k.rpartition("_")[2]
    return None
