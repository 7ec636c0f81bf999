"""The node's half: a resolved runtime_env made ready on this node, once, under the session.

    <session>/runtime_resources/         0700, ours (_private_files), never a link
        pkgs/<sha>/                      a package unpacked: a working_dir, a py_module's
                                         parent
        pkgs/<sha>.whl/<name>.whl        a py_modules wheel, as it came: pip installs it
                                         into the env's venv
        pip/<hash>/                      a venv per requirements (pip_env.py)
        envs/<env key>.json              the spec a worker of that env reads at start:
                                         {"env", "cwd", "paths", "python", "error"}

    prepare(env, session_dir, fetch, log) ─► spec (written to envs/<key>.json)
        a package missing here ─► fetch(sha) (the cluster's KV) ─► its sha256 checked ─►
        unpacked into a fresh temp dir, renamed into place (a reader never sees half)
    load_spec(session_dir, key) ─► the spec, read without following links, ours only

A failure to prepare is written to the spec as its error: the worker started for it
fails each task or actor given to it with a RuntimeEnvSetupError carrying that text.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import traceback
from typing import Any, Callable

from .. import _ids
from .. import _private_files as private
from ..exceptions import RuntimeEnvSetupError
from .validate import env_key


def root(session_dir: str) -> str:
    return os.path.join(session_dir, "runtime_resources")


def _dirs(session_dir: str) -> dict:
    r = root(session_dir)
    out = {"root": r, "pkgs": os.path.join(r, "pkgs"), "pip": os.path.join(r, "pip"),
           "envs": os.path.join(r, "envs")}
    for path in out.values():
        private.make_dir(path)
    return out


def prepare(env: dict, session_dir: str, fetch: Callable[[str], bytes | None],
            log: Callable[[str], None], stopped: Any = None) -> dict:
    """Makes `env` ready on this node and writes its spec; returns the spec (with "error"
    set when it could not be made ready). `stopped` (an Event): the node is stopping, end
    a pip install."""
    key = env_key(env)
    spec: dict[str, Any] = {"env": env, "cwd": None, "paths": [], "python": None, "error": None}
    try:
        d = _dirs(session_dir)
        if env.get("working_dir"):
            spec["cwd"] = ensure_package(env["working_dir"], d["pkgs"], fetch)
            spec["paths"].append(spec["cwd"])
        for sha in env.get("py_modules", ()):
            spec["paths"].append(ensure_package(sha, d["pkgs"], fetch))
        wheels = [os.path.join(ensure_package(sha, d["pkgs"], fetch, name), name)
                  for sha, name in env.get("wheels", ())]
        if env.get("pip"):
            from . import pip_env  # subprocess, sysconfig: only for a pip env

            pip = {**env["pip"], "packages": [*env["pip"]["packages"], *wheels]}
            spec["python"] = pip_env.ensure(pip, d["pip"], log, stopped)
    except RuntimeEnvSetupError as e:
        spec["error"] = str(e)
    except Exception as e:
        spec["error"] = (f"Setting up the runtime_env on this node failed: {type(e).__name__}: "
                         f"{e}\n{traceback.format_exc(limit=5)}")
    try:
        envs = _dirs(session_dir)["envs"]
        private.write_text(os.path.join(envs, f"{key}.json"), json.dumps(spec))
    except (OSError, private.NotPrivateError) as e:
        spec["error"] = spec["error"] or f"could not write the runtime_env's spec: {e}"
    return spec


def ensure_package(sha: str, pkgs: str, fetch: Callable[[str], bytes | None],
                   wheel: str | None = None) -> str:
    """The directory package `sha` is unpacked in, fetched and unpacked if missing (a
    `wheel`: the directory it is written in as that file, not unpacked)."""
    target = os.path.join(pkgs, sha + ".whl" if wheel else sha)
    if private.check_dir(target):
        return target
    data = fetch(sha)
    if data is None:
        raise RuntimeEnvSetupError(f"the runtime_env package {sha[:16]} is not in the cluster's "
                                   "store: the driver that uploaded it may have been started "
                                   "against another cluster; submit the task again.")
    if hashlib.sha256(data).hexdigest() != sha:
        raise RuntimeEnvSetupError(f"the runtime_env package {sha[:16]} came back with other "
                                   "contents than its hash says: refusing it.")
    tmp = os.path.join(pkgs, f".tmp-{sha[:16]}-{os.getpid()}-{_ids.random_id(4).hex()}")
    private.make_dir(tmp)
    try:
        from . import packing

        if wheel:
            fd = private.open_file(os.path.join(tmp, wheel), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        else:
            packing.unpack(data, tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another daemon of this session unpacked it first
            if not private.check_dir(target):
                raise
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_spec(session_dir: str, key: str) -> dict:
    """The spec prepare() wrote for `key`; RuntimeEnvSetupError if missing or not ours."""
    if not all(c in "0123456789abcdef" for c in key):
        raise RuntimeEnvSetupError(f"{key!r} is not a runtime_env key")
    path = os.path.join(root(session_dir), "envs", f"{key}.json")
    text = private.read_text(path)
    if text is None:
        raise RuntimeEnvSetupError(f"the runtime_env spec {path} is missing")
    return json.loads(text)
