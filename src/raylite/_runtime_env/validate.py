"""A runtime_env as the user gives it, checked; and the resolved form that travels.

    check(env)        at .options() / @remote / init(): types of the keys raylite knows,
                      a copy out (no I/O; keys raylite does not run are kept, so that the
                      Ray runtime can pass them on)
    refuse_unsupported(env)  raylite's own runtimes: conda, container, image_uri, uv and
                      unknown keys are a ValueError naming the key and what raylite runs
    merge(job, task)  Ray's rule: the task's keys replace the job's, env_vars are merged
    check_resolved(env) the node daemon's check of a resolved env from a client (None = ok)

The resolved form is plain JSON: {"working_dir": sha, "py_modules": [sha, ...],
"pip": {"packages": [...], "options": [...], "timeout": s}, "setup_hook": "mod.func" or
{"pickled": hex}}, only the keys that need a worker process of their own; its `env_key`
is what a worker pool keys on.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

SUPPORTED = ("config", "env_vars", "excludes", "pip", "py_modules", "working_dir",
             "worker_process_setup_hook")
REFUSED = {
    "conda": "raylite does not create conda environments: use 'pip', or install the packages "
             "on every node",
    "container": "raylite does not run workers in containers",
    "image_uri": "raylite does not run workers in container images",
    "uv": "use 'pip' (raylite installs it with uv when uv is on the PATH)",
    "java_jars": "raylite runs Python only",
}
PROCESS_KEYS = ("working_dir", "py_modules", "pip", "worker_process_setup_hook")
MAX_HOOK_BYTES = 1 << 20


def _str_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)


def check(v: Any) -> dict | None:
    """The runtime_env's shape checked (ValueError naming the problem); a copy out."""
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError(f"runtime_env must be a dict, got {v!r}.")
    out = dict(v)
    env_vars = v.get("env_vars", {})
    if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                                  for k, x in env_vars.items()):
        raise ValueError(f"runtime_env['env_vars'] must be a dict of str -> str, got {env_vars!r}.")
    out["env_vars"] = dict(env_vars)
    if "excludes" in v and not _str_list(v["excludes"]):
        raise ValueError(f"runtime_env['excludes'] must be a list of patterns, got {v['excludes']!r}.")
    wd = v.get("working_dir")
    if wd is not None:
        if not isinstance(wd, (str, os.PathLike)):
            raise ValueError(f"runtime_env['working_dir'] must be a path, got {wd!r}.")
        if "://" in os.fspath(wd):
            raise ValueError(f"runtime_env['working_dir'] {os.fspath(wd)!r} is a URI; raylite "
                             "takes a local directory, which it packs and uploads.")
        out["working_dir"] = os.fspath(wd)
    mods = v.get("py_modules")
    if mods is not None:
        if not isinstance(mods, (list, tuple)) or not all(isinstance(x, (str, os.PathLike))
                                                          for x in mods):
            raise ValueError("runtime_env['py_modules'] must be a list of local package "
                             f"directories or .whl files, got {mods!r}.")
        out["py_modules"] = [os.fspath(x) for x in mods]
    if "pip" in v:
        _check_pip(v["pip"])
    hook = v.get("worker_process_setup_hook")
    if hook is not None and not callable(hook) and not (isinstance(hook, str) and "." in hook):
        raise ValueError("runtime_env['worker_process_setup_hook'] must be a callable or a "
                         f"'module.function' string, got {hook!r}.")
    config = v.get("config")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"runtime_env['config'] must be a dict, got {config!r}.")
    return out


def _check_pip(pip: Any) -> None:
    if isinstance(pip, str) or _str_list(pip):
        return
    if isinstance(pip, dict) and _str_list(pip.get("packages")) or \
            isinstance(pip, dict) and isinstance(pip.get("packages"), str):
        if set(pip) - {"packages", "pip_install_options", "pip_check", "pip_version"}:
            raise ValueError("runtime_env['pip'] as a dict takes 'packages' and "
                             f"'pip_install_options', got keys {sorted(pip)}.")
        if not _str_list(pip.get("pip_install_options", [])):
            raise ValueError("runtime_env['pip']['pip_install_options'] must be a list of str.")
        return
    raise ValueError("runtime_env['pip'] must be a list of requirements, the path of a "
                     f"requirements.txt, or {{'packages': [...]}}, got {pip!r}.")


def refuse_unsupported(env: dict | None) -> None:
    """ValueError for a key raylite's runtimes do not run, naming it and what they do run."""
    for key in sorted(env or ()):
        if key not in SUPPORTED:
            why = REFUSED.get(key, "raylite does not know this key")
            raise ValueError(f"runtime_env[{key!r}] is not supported by raylite: {why}. "
                             f"raylite supports {list(SUPPORTED)}.")


def merge(job: dict | None, task: dict | None) -> dict | None:
    """The env a task or actor runs with: its own keys over the job's; env_vars merged."""
    if not job:
        return task
    if not task:
        return job
    out = {**job, **task}
    out["env_vars"] = {**(job.get("env_vars") or {}), **(task.get("env_vars") or {})}
    return out


def described(job: dict | None, own: dict | None) -> dict | None:
    """The runtime_env a task or actor runs with, as get_runtime_context() reports it: its
    keys over the job's as given (env_vars merged), a callable setup hook by its name."""
    env = merge(job, own)
    if not env:
        return None
    env = {k: v for k, v in env.items() if v or k not in ("env_vars", "excludes")}
    hook = env.get("worker_process_setup_hook")
    if hook is not None and not isinstance(hook, str):
        env["worker_process_setup_hook"] = \
            f"{getattr(hook, '__module__', None)}.{getattr(hook, '__qualname__', repr(hook))}"
    return env or None


def env_key(resolved: dict | None) -> str | None:
    """What a worker pool keys on: a hash of the resolved env (None: a plain worker)."""
    if not resolved:
        return None
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:32]


_WHEEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]{0,200}\.whl")  # a file name, no path


def _is_sha(x: Any) -> bool:
    return isinstance(x, str) and len(x) == 64 and all(c in "0123456789abcdef" for c in x)


def check_resolved(env: Any) -> str | None:
    """None when `env` is a resolved env a daemon may act on; else what is wrong."""
    if env is None:
        return None
    if not isinstance(env, dict) or \
            set(env) - {"working_dir", "py_modules", "wheels", "pip", "setup_hook"}:
        return "not a resolved runtime_env"
    if "working_dir" in env and not _is_sha(env["working_dir"]):
        return "working_dir is not a package hash"
    mods = env.get("py_modules", [])
    if not isinstance(mods, list) or len(mods) > 256 or not all(_is_sha(x) for x in mods):
        return "py_modules is not a list of package hashes"
    wheels = env.get("wheels", [])
    if not isinstance(wheels, list) or len(wheels) > 256 or not all(
            isinstance(w, list) and len(w) == 2 and _is_sha(w[0]) and isinstance(w[1], str)
            and _WHEEL_NAME.fullmatch(w[1]) for w in wheels):
        return "wheels is not a list of [package hash, wheel file name]"
    if wheels and "pip" not in env:
        return "wheels come with a pip spec"
    pip = env.get("pip")
    if pip is not None and not (isinstance(pip, dict) and set(pip) == {"packages", "options", "timeout"}
                                and _str_list(pip["packages"]) and _str_list(pip["options"])
                                and isinstance(pip["timeout"], (int, float)) and pip["timeout"] > 0):
        return "pip is not a resolved requirements list"
    hook = env.get("setup_hook")
    if hook is not None and not (isinstance(hook, str) and len(hook) < 1024) and not (
            isinstance(hook, dict) and set(hook) == {"pickled"} and isinstance(hook["pickled"], str)
            and len(hook["pickled"]) <= 2 * MAX_HOOK_BYTES):
        return "setup_hook is not a 'module.function' or a pickled callable"
    return None
