"""Local mode's runtime_env: what one process can apply to itself, and a clear refusal of the rest.

    working_dir   put first on sys.path, as it is (not packed: `excludes` do not apply, the
                  cwd is not changed: tasks share the driver's process)
    py_modules    a package directory's parent, or a .whl itself (imported by zipimport:
                  pure-Python wheels only), put first on sys.path
    worker_process_setup_hook   run once per hook in this process, before the first task
                  or actor that names it; a hook that raises fails that task with
                  RuntimeEnvSetupError (and the next ones, as a broken worker would)
    env_vars, config            as the cluster runtime does
    pip           refused: it needs a worker process of its own (another interpreter)

The env applied is the one in effect (LocalEnvs.of, Ray's inheritance rule): the task's or
actor's own keys over its parent's (the task or actor that submitted it; the job's from the
driver), env_vars merged.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from ..exceptions import RuntimeEnvSetupError
from .validate import PROCESS_KEYS, described, merge, refuse_unsupported
from .worker import run_hook


class LocalEnvs:
    def __init__(self, job: dict | None):
        self.job = job  # as given to init()
        self._hooks: dict[Any, str | None] = {}   # hook (or its id) -> error text, once run
        self._last: tuple = (None, None)          # (env, described(env)): described()
        self._plain = not any((job or {}).get(k) for k in PROCESS_KEYS)  # the common case
        self.apply(job)

    def of(self, scope: Any, own: dict | None) -> dict | None:
        """The runtime_env a task or actor submitted here runs in, as given (Ray's
        inheritance): `own` keys over its parent's (`scope`: the task or actor running here,
        context.TaskScope, whose `env` is its env in effect; None: the driver, so the job's),
        env_vars merged."""
        return merge(scope.env if scope is not None else self.job, own)

    def described(self, env: dict | None) -> dict | None:
        """`env` as get_runtime_context() reports it (the last one kept: tasks repeat it)."""
        if env is None:
            return None
        if self._last[0] is not env:
            self._last = (env, described(None, env))
        return self._last[1]

    def wrap(self, env: dict | None, fn: Any) -> Any:
        """`fn`, run in `env` (the env in effect, see apply); with a setup hook, `fn` runs it
        first, so a hook that raises fails that task or actor."""
        if env is None or env is self.job and self._plain:
            return fn
        hook = self.apply(env)
        if hook is None:
            return fn

        def in_env(*args: Any, **kwargs: Any) -> Any:
            self._run_hook(hook)
            return fn(*args, **kwargs)
        return in_env

    def apply(self, env: dict | None) -> Any:
        """Applies what local mode can of `env` (the env in effect: a task's or actor's keys
        over its parent's): sys.path now; ValueError for what it cannot. Returns its setup
        hook."""
        refuse_unsupported(env)
        if not env or not any(env.get(k) for k in PROCESS_KEYS):
            return None
        if env.get("pip"):
            raise ValueError("runtime_env['pip'] is not supported in local mode: it needs worker "
                             "processes running another interpreter. Install the packages in "
                             "this environment, or use the cluster runtime (local_mode=False).")
        paths = [os.path.abspath(env["working_dir"])] if env.get("working_dir") else []
        for p in env.get("py_modules") or ():
            p = os.path.abspath(p)
            if os.path.isdir(p):
                paths.append(os.path.dirname(p.rstrip(os.sep)))
            elif p.endswith(".whl") and os.path.isfile(p):
                paths.append(p)
            else:
                raise ValueError(f"runtime_env['py_modules'] {p!r} is neither a package "
                                 "directory nor a .whl file here.")
        if env.get("working_dir") and not os.path.isdir(paths[0]):
            raise ValueError(f"runtime_env['working_dir'] {env['working_dir']!r} is not a "
                             "directory here.")
        sys.path[0:0] = [p for p in dict.fromkeys(paths) if p not in sys.path]
        return env.get("worker_process_setup_hook")

    def _run_hook(self, hook: Any) -> None:
        key = hook if isinstance(hook, str) else id(hook)
        if key not in self._hooks:
            try:
                run_hook(hook)
                self._hooks[key] = None
            except Exception as e:
                self._hooks[key] = (f"runtime_env['worker_process_setup_hook'] raised "
                                    f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        if self._hooks[key] is not None:
            raise RuntimeEnvSetupError(self._hooks[key])
