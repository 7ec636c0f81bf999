"""A job's runtime_env checked; its working_dir and py_modules packed on the client, unpacked
on the head.

    client: check_runtime_env(env) ─► _runtime_env.packing.pack(working_dir, excludes) ─►
            the zip travels to the job manager as an argument; each of py_modules too
            (pack_modules: a package directory zipped under its name, a .whl as it is)
    head:   the job's supervisor unpacks it (packing.unpack) into
            <session>/jobs/<submission_id>/working_dir, the entrypoint's cwd, first on its
            PYTHONPATH; the entrypoint gets the job's runtime_env in RAYLITE_JOB_RUNTIME_ENV
            with that directory as its working_dir, so init() there gives the job's tasks
            and actors the same working_dir (and pip, setup hook) as the entrypoint. The
            py_modules land in <job dir>/py_modules (place_modules), on the entrypoint's
            PYTHONPATH, and are the job's py_modules in RAYLITE_JOB_RUNTIME_ENV.

Packing, excludes, the size limit and safe unpacking are the one implementation in
raylite._runtime_env.packing, shared with every task's and actor's runtime_env.
"""
from __future__ import annotations

import os

from .._runtime_env.validate import check

# runtime_env keys a job takes: working_dir and excludes are used by the client and the head,
# env_vars are set for the entrypoint, the rest reach the job's tasks through its init().
JOB_RUNTIME_ENV_KEYS = ("working_dir", "excludes", "env_vars", "config", "pip", "py_modules",
                        "worker_process_setup_hook")


def check_runtime_env(env: object) -> dict | None:
    """The runtime_env of a job, checked (ValueError naming the problem); None stays None."""
    if env is None:
        return None
    if not isinstance(env, dict):
        raise ValueError(f"runtime_env must be a dict, got {type(env).__name__}.")
    unknown = sorted(set(env) - set(JOB_RUNTIME_ENV_KEYS))
    if unknown:
        raise ValueError(f"runtime_env keys {unknown} are not supported for raylite jobs; "
                         f"supported: {list(JOB_RUNTIME_ENV_KEYS)}.")
    out = check(env)
    if callable(out.get("worker_process_setup_hook")):
        raise ValueError("a job's runtime_env['worker_process_setup_hook'] must be a "
                         "'module.function' string: a job's runtime_env travels as JSON.")
    if isinstance(out.get("pip"), str):  # a requirements file here: its lines travel
        from .._runtime_env.resolve import pip_spec

        out["pip"] = pip_spec(out["pip"])["packages"]
    wd = out.get("working_dir")
    if wd is not None and not os.path.isdir(wd):
        raise ValueError(f"runtime_env['working_dir'] {wd!r} is not a directory here: give "
                         "the path of a local directory to upload.")
    for m in out.get("py_modules") or ():
        if not (os.path.isdir(m) or (m.endswith(".whl") and os.path.isfile(m))):
            raise ValueError(f"runtime_env['py_modules'] {m!r} is neither a directory nor a "
                             ".whl file here: give local package directories or wheels.")
    return out


def pack_modules(env: dict | None) -> list | None:
    """(name, bytes) of each of the job's py_modules: a package directory zipped under its
    own name, a wheel as it is (its file name kept: pip needs it)."""
    from .._runtime_env import packing

    modules = (env or {}).get("py_modules")
    if not modules:
        return None
    out = []
    for m in modules:
        name = os.path.basename(os.path.abspath(m).rstrip(os.sep))
        if os.path.isfile(m):
            out.append((name, packing.file_package(m).data))
        else:
            out.append((name, packing.pack(m, (env or {}).get("excludes", []), name,
                                           what="py_modules").data))
    return out


def place_modules(modules: list | None, job_dir: str) -> tuple[list, list]:
    """Writes the job's py_modules under <job_dir>/py_modules on the head: (the paths to put
    on the entrypoint's PYTHONPATH, the job's py_modules as paths here)."""
    from .. import _private_files as private
    from .._runtime_env import packing

    paths: list = []
    given: list = []
    for i, (name, data) in enumerate(modules or ()):
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"py_modules name {name!r} is not a plain file or directory name.")
        where = os.path.join(job_dir, "py_modules", str(i))
        if name.endswith(".whl"):
            private.make_dir(where)
            path = os.path.join(where, name)
            with os.fdopen(private.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                           "wb") as f:
                f.write(data)
            paths.append(path)   # zipimport: the entrypoint imports a pure-Python wheel
            given.append(path)
        else:
            packing.unpack(data, where)
            paths.append(where)
            given.append(os.path.join(where, name))
    return paths, given


def entrypoint_runtime_env(runtime_env: dict | None, cwd: str | None,
                           py_modules: list | None = None) -> dict:
    """What the entrypoint's init() gets as the job's runtime_env (JSON-able)."""
    env = {k: v for k, v in (runtime_env or {}).items()
           if k not in ("working_dir", "excludes", "py_modules")}
    return {**env, **({"working_dir": cwd} if cwd else {}),
            **({"py_modules": py_modules} if py_modules else {})}
