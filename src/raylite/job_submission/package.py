"""A job's runtime_env checked; its working_dir packed on the client, unpacked on the head.

    client: check_runtime_env(env) ─► _runtime_env.packing.pack(working_dir, excludes) ─►
            the zip travels to the job manager as an argument
    head:   the job's supervisor unpacks it (packing.unpack) into
            <session>/jobs/<submission_id>/working_dir, the entrypoint's cwd, first on its
            PYTHONPATH; the entrypoint gets the job's runtime_env in RAYLITE_JOB_RUNTIME_ENV
            with that directory as its working_dir, so init() there gives the job's tasks
            and actors the same working_dir (and pip, setup hook) as the entrypoint.

Packing, excludes, the size limit and safe unpacking are the one implementation in
raylite._runtime_env.packing, shared with every task's and actor's runtime_env.
"""
from __future__ import annotations

import os

from .._runtime_env.validate import check

# runtime_env keys a job takes: working_dir and excludes are used by the client and the head,
# env_vars are set for the entrypoint, the rest reach the job's tasks through its init().
JOB_RUNTIME_ENV_KEYS = ("working_dir", "excludes", "env_vars", "config", "pip",
                        "worker_process_setup_hook")


def check_runtime_env(env: object) -> dict | None:
    """The runtime_env of a job, checked (ValueError naming the problem); None stays None."""
    if env is None:
        return None
    if not isinstance(env, dict):
        raise ValueError(f"runtime_env must be a dict, got {type(env).__name__}.")
    unknown = sorted(set(env) - set(JOB_RUNTIME_ENV_KEYS))
    if unknown:
        hint = " (ship local modules inside working_dir)" if "py_modules" in unknown else ""
        raise ValueError(f"runtime_env keys {unknown} are not supported for raylite jobs{hint}; "
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
    return out


def entrypoint_runtime_env(runtime_env: dict | None, cwd: str | None) -> dict:
    """What the entrypoint's init() gets as the job's runtime_env (JSON-able)."""
    env = {k: v for k, v in (runtime_env or {}).items() if k not in ("working_dir", "excludes")}
    return {**env, **({"working_dir": cwd} if cwd else {})}
