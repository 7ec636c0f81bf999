"""`import ray` resolving to raylite, for `raylite run script.py` only.

    import ray.util.queue ─► sys.meta_path[0]: RayAlias.find_spec("ray.util.queue")
                          ─► raylite.util.queue exists? its module object, also as
                             sys.modules["ray.util.queue"]; else ModuleNotFoundError
                             naming what raylite lacks

Nothing installs it but `raylite run` (in its own process) and a worker whose
environment has RAYLITE_RAY_ALIAS=1 (set by `raylite run`, so the cluster its
init() starts has it): a module of the program that does `import ray` and
whose functions travel by reference imports fine there too. A program that
imports raylite never meets it. Names with a private component (ray._private,
ray._raylet) are not mapped: raylite's private modules are not Ray's.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

ENV = "RAYLITE_RAY_ALIAS"


class RayAlias:
    """Finds ray and ray.* as raylite and raylite.* (the same module objects): a meta path
    finder and its loader. No importlib.abc base classes: importing importlib.abc pulls in
    importlib.resources, pathlib and urllib (6 ms and about 1 MB in every worker)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "ray" and not fullname.startswith("ray."):
            return None
        mapped = "raylite" + fullname[3:]
        private = any(part.startswith("_") for part in fullname.split(".")[1:])
        found = None if private else _find(mapped)
        if found is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: `raylite run` maps ray.* to raylite.*, and "
                f"raylite has no {mapped} (it covers Ray Core, ray.util and ray.exceptions; "
                "not Ray's libraries nor its private modules).", name=fullname)
        return importlib.util.spec_from_loader(
            fullname, self, is_package=found.submodule_search_locations is not None)

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module("raylite" + spec.name[3:])
        spec.loader_state = module.__spec__  # the import system sets the alias's spec on it
        return module

    def exec_module(self, module: Any) -> None:
        module.__spec__ = module.__spec__.loader_state  # raylite's module keeps its own spec


def _find(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent package is missing
        return None


def install() -> None:
    """Puts the alias first on sys.meta_path (once) and marks this process and the processes
    it starts (a cluster's daemon and workers) as running a Ray program."""
    os.environ[ENV] = "1"
    if not any(isinstance(f, RayAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, RayAlias())


def install_if_asked() -> None:
    """In a worker: installs the alias when RAYLITE_RAY_ALIAS=1 (set by `raylite run`)."""
    from . import _config

    if _config.ray_alias():
        install()
