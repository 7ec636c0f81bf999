"""The worker's half: a worker process started for a runtime_env enters it before it serves.

    worker start (fork server child, env key K) ─► load(session, K): the spec the daemon
        wrote (node_cache.py) ─► spec["python"] (a pip venv)? exec_worker: the same worker
        re-executed by that python (same pid, so the daemon still admits it; its settings
        through a pipe, never argv) ─► enter(spec): cwd = the working_dir, sys.path gets the
        working_dir and py_modules first
    first task or actor of this process ─► WorkerEnv.ready(): the setup hook, once; a spec
        error or a failed hook raises RuntimeEnvSetupError for that task (the worker exits
        after answering it)
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

from ..exceptions import RuntimeEnvSetupError


def load(session_dir: str, key: str) -> dict:
    """The spec of env `key`; one whose error says why when it cannot be read."""
    try:
        from . import node_cache

        return node_cache.load_spec(session_dir, key)
    except Exception as e:  # unreadable, planted, missing: every task says so
        return {"env": None, "cwd": None, "paths": [], "python": None,
                "error": f"the runtime_env of this worker could not be loaded: {e}"}


def enter(spec: dict) -> None:
    """Makes this process's cwd the working_dir and puts the env's paths first on sys.path."""
    if spec.get("cwd") and not spec.get("error"):
        os.chdir(spec["cwd"])
    paths = [p for p in spec.get("paths") or () if p not in sys.path]
    sys.path[0:0] = paths


def exec_worker(python: str, settings: dict, spec: dict) -> None:
    """Replaces this process with `python` running the same worker; returns only when
    `python` cannot be executed, with the reason in spec["error"] (the worker then fails
    its task with it, instead of failing to start again and again)."""
    r, w = os.pipe()
    os.write(w, json.dumps(settings).encode())  # a few hundred bytes: fits the pipe
    os.close(w)
    os.set_inheritable(r, True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(python, [python, "-c", "from raylite._worker.main import exec_main; exec_main()",
                          str(r)])
    except OSError as e:
        os.close(r)
        spec["error"] = f"the runtime_env's python {python} could not be started: {e}"


class WorkerEnv:
    """The runtime_env this worker process runs with: its setup hook, and any error."""

    def __init__(self, spec: dict):
        self.env = spec.get("env") or {}
        self.error: str | None = spec.get("error")
        self._hook = self.env.get("setup_hook")

    def ready(self) -> None:
        """Runs the setup hook once; RuntimeEnvSetupError while the env is not usable."""
        if self._hook is not None and self.error is None:
            hook, self._hook = self._hook, None
            try:
                run_hook(hook)
            except BaseException as e:
                self.error = ("runtime_env['worker_process_setup_hook'] raised "
                              f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        if self.error is not None:
            raise RuntimeEnvSetupError(self.error)


def run_hook(hook: Any) -> None:
    """Calls a hook given as a callable, a "module.function" string or {"pickled": hex}."""
    if isinstance(hook, dict):
        from .._serialization import loads

        hook = loads(bytes.fromhex(hook["pickled"]))
    elif isinstance(hook, str):
        import importlib

        module, _, name = hook.rpartition(".")
        hook = getattr(importlib.import_module(module), name)
    hook()
