"""The driver's half: a runtime_env turned into its resolved form, packages uploaded once.

    Resolver(store).resolve(env) ─► resolved env (validate.py) or None
        working_dir ─► packing.pack ─► store.put("pkg/<sha>") unless the store has it
        py_modules  ─► each directory packed under its own name ("py_modules"); each .whl as
                       it is, under "wheels" with its file name: the node pip-installs it
                       into the env's venv (with the env's pip requirements, if any)
        pip         ─► the requirements (a list, a requirements.txt read here, or
                       {"packages", "pip_install_options"}) and the setup timeout
        worker_process_setup_hook ─► "module.func" as is, a callable pickled

inherit(parent, own, resolved_own) ─► the resolved env of a task or actor started inside a
    worker (whose process runs `parent`, resolved): Ray's inheritance rule on the resolved
    form (each key the child gives replaces the parent's; the rest is the parent's), since
    the parent's env as given names directories of the driver's machine.

`store` is the cluster's KV (`has(key)`, `put(key, bytes)`): a package is content
addressed, so a node that lacks one fetches it by its hash, whoever uploaded it. A
directory is packed once per Resolver (per init()), however many tasks name it.
"""
from __future__ import annotations

import os
from typing import Any

from .validate import PROCESS_KEYS, refuse_unsupported

KV_PREFIX = b"raylite/runtime_env/pkg/"
DEFAULT_SETUP_TIMEOUT_S = 600.0   # Ray's config["setup_timeout_seconds"] default


def kv_key(sha: str) -> bytes:
    return KV_PREFIX + sha.encode()


class Resolver:
    def __init__(self, store: Any):
        self.store = store
        self._packed: dict[tuple, str] = {}    # (path, excludes, kind) -> sha, uploaded
        self._hooks: dict[int, tuple] = {}     # id(callable) -> (callable, hex)

    def resolve(self, env: dict | None) -> dict | None:
        refuse_unsupported(env)
        if not env or not any(env.get(k) for k in PROCESS_KEYS):
            return None
        out: dict = {}
        excludes = tuple(env.get("excludes") or ())
        if env.get("working_dir"):
            out["working_dir"] = self._upload(env["working_dir"], excludes, "working_dir")
        for p in env.get("py_modules") or ():
            sha = self._upload(p, excludes, "py_modules")
            if os.path.isfile(p):  # a wheel (_upload refused any other file)
                out.setdefault("wheels", []).append([sha, os.path.basename(p)])
            else:
                out.setdefault("py_modules", []).append(sha)
        if env.get("pip") or out.get("wheels"):
            out["pip"] = pip_spec(env.get("pip") or [],
                                  (env.get("config") or {}).get("setup_timeout_seconds"))
        hook = env.get("worker_process_setup_hook")
        if hook is not None:
            out["setup_hook"] = hook if isinstance(hook, str) else {"pickled": self._pickle(hook)}
        return out

    def _upload(self, path: str, excludes: tuple, what: str) -> str:
        path = os.path.abspath(path)
        key = (path, excludes, what)
        sha = self._packed.get(key)
        if sha is not None:
            return sha
        from . import packing  # zipfile and friends: only for a runtime_env that packs

        if what == "py_modules" and os.path.isfile(path):
            if not path.endswith(".whl"):
                raise ValueError(f"runtime_env['py_modules'] {path!r} is a file but not a .whl: "
                                 "give a package directory or a wheel.")
            pkg = packing.file_package(path)
        else:
            prefix = os.path.basename(path.rstrip(os.sep)) if what == "py_modules" else ""
            pkg = packing.pack(path, excludes, prefix, what=what)
        if not self.store.has(kv_key(pkg.sha)):
            self.store.put(kv_key(pkg.sha), pkg.data)
        self._packed[key] = pkg.sha
        return pkg.sha

    def _pickle(self, hook: Any) -> str:
        got = self._hooks.get(id(hook))
        if got is None or got[0] is not hook:
            from .._serialization import dumps

            data = dumps(hook)
            if len(data) > (1 << 20):
                raise ValueError("runtime_env['worker_process_setup_hook'] pickles to more than "
                                 "1 MiB: give a 'module.function' string instead.")
            got = self._hooks[id(hook)] = (hook, data.hex())
        return got[1]


# the keys as given -> the parts of the resolved form each one makes
_PARTS = {"working_dir": ("working_dir",), "py_modules": ("py_modules", "wheels"),
          "worker_process_setup_hook": ("setup_hook",)}


def inherit(parent: dict | None, own: dict | None, resolved_own: dict | None) -> dict | None:
    """The resolved env of a child whose parent runs in `parent` (resolved) and which gives
    `own` (as given; `resolved_own` = Resolver.resolve(own)): a key `own` names replaces the
    parent's (`pip` its requirements, `config` its setup timeout), the others are inherited."""
    if not own:
        return parent
    out = dict(parent or {})
    mine = resolved_own or {}
    for key, parts in _PARTS.items():
        if key in own:
            for part in parts:
                out.pop(part, None)
                if part in mine:
                    out[part] = mine[part]
    was, new = out.pop("pip", None) or {}, mine.get("pip") or {}
    pip = new if "pip" in own else was
    timeout = (own.get("config") or {}).get("setup_timeout_seconds") if "config" in own else None
    if pip.get("packages") or out.get("wheels"):
        spec = pip_spec(list(pip.get("packages") or ()),
                        timeout if timeout is not None else was.get("timeout"))
        out["pip"] = {**spec, "options": list(pip.get("options") or ())}
    return out or None


def pip_spec(pip: Any, timeout: Any = None) -> dict:
    """{"packages", "options", "timeout"} from any of the forms `pip` takes."""
    options: list = []
    if isinstance(pip, dict):
        options = list(pip.get("pip_install_options") or [])
        pip = pip["packages"]
    if isinstance(pip, str):
        if not os.path.isfile(pip):
            raise ValueError(f"runtime_env['pip'] {pip!r} is not a requirements file here: give "
                             "its path, or a list of requirements.")
        with open(pip, encoding="utf-8") as f:
            pip = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError("runtime_env['config']['setup_timeout_seconds'] must be a positive "
                         f"number, got {timeout!r}.")
    return {"packages": [str(x) for x in pip], "options": [str(x) for x in options],
            "timeout": float(timeout or DEFAULT_SETUP_TIMEOUT_S)}
