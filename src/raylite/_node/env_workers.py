"""Which runtime_env each worker of a node was started with (pure: no I/O, no clock).

The scheduler (scheduler.py) grants a request only a worker of the request's env, so a
worker that ran with env X never runs a task of env Y or a plain one. `env` is an opaque
key (the hash of a resolved runtime_env, see raylite._runtime_env); None is a plain worker.
"""
from __future__ import annotations

from collections import deque
from typing import Any


class EnvWorkers:
    def __init__(self) -> None:
        self.of: dict[bytes, Any] = {}        # worker id -> its env key (plain workers: absent)
        self.starting: dict[Any, int] = {}    # env key (None: plain) -> workers starting

    def started(self, env: Any, n: int = 1) -> None:
        self.starting[env] = self.starting.get(env, 0) + n

    def start_ended(self, env: Any) -> None:
        """One start of `env` ended (registered or failed)."""
        n = self.starting.get(env, 0) - 1
        if n > 0:
            self.starting[env] = n
        else:
            self.starting.pop(env, None)

    def registered(self, worker_id: bytes, env: Any) -> None:
        """A worker of `env` registered: its start ended."""
        self.start_ended(env)
        if env is not None:
            self.of[worker_id] = env

    def forget(self, worker_id: bytes) -> None:
        self.of.pop(worker_id, None)

    def take(self, idle: deque, env: Any) -> bytes | None:
        """The longest-idle worker of `env`, taken out of `idle`; None if it has none."""
        if env is None and not self.of:  # the common case: every worker is plain
            return idle.popleft() if idle else None
        worker_id = next((w for w in idle if self.of.get(w) == env), None)
        if worker_id is not None:
            idle.remove(worker_id)
        return worker_id

    def stale(self, idle: deque, env: Any, n: int) -> list:
        """Up to `n` idle workers of other runtime_envs than `env` (plain ones stay: warm)."""
        return [w for w in idle if self.of.get(w, env) != env][:n]
