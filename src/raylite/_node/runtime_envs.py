"""Runtime environments on this node: made ready once, before their workers start (mixed
into NodeServer; shares its lock).

    RequestLease(env) / PlaceActor(spec.runtime_env) ─► env_key ─► scheduler, keyed by it
    Spawn(n, key) ─► ready?   yes ─► n × "spawn <id> <key>" to the fork server
                              no  ─► counted as pending; the first asks a thread to
                                     prepare it (_runtime_env.node_cache.prepare: packages
                                     fetched from the GCS's KV by hash, unpacked under the
                                     session dir, the pip venv made) ─► then the pending spawns
    a worker of that env reads <session>/runtime_resources/envs/<key>.json at start
    pip's output ─► <session>/logs/runtime_env-<key>.log line by line (the daemon's log says
                    where, when the install starts and when the env is ready)

A preparation that failed writes its error into the spec: the workers started for it
fail their one task or actor with a RuntimeEnvSetupError and exit. The failure is
reused for FAILED_REUSE_S (a burst of tasks does not run pip once each); after that
the next worker of that env prepares it again. When the daemon stops, a pip install
under way is ended (its process group killed) before the daemon exits.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from .. import _private_files as private
from .._protocol import messages as m
from .._runtime_env.resolve import kv_key
from .._runtime_env.validate import env_key

log = logging.getLogger("raylite.node")

FETCH_TIMEOUT_S = 300.0
FAILED_REUSE_S = 5.0
STOP_WAIT_S = 3.0
_PREPARING = "preparing"
_READY = "ready"


class RuntimeEnvs:
    _lock: Any
    session_dir: str
    stopped: threading.Event
    gcs_ep: Any
    gcs_conn: Any

    def _init_envs(self) -> None:
        self._env_defs: dict[str, dict] = {}      # key -> the resolved env
        self._env_state: dict[str, Any] = {}      # key -> _PREPARING, _READY or failed-at time
        self._env_pending: dict[str, int] = {}    # key -> spawns waiting for it
        self._env_threads: list[threading.Thread] = []

    def _env_key(self, env: dict | None) -> str | None:
        key = env_key(env)
        if key is not None:
            self._env_defs.setdefault(key, env)
        return key

    def _spawn_env(self, key: str) -> None:
        """One worker of env `key` (lock held): now, or once the env is ready here."""
        st = self._env_state.get(key)
        if st == _READY or isinstance(st, float) and time.monotonic() - st < FAILED_REUSE_S:
            self._spawn(key)
            return
        self._env_pending[key] = self._env_pending.get(key, 0) + 1
        if st != _PREPARING:
            self._env_state[key] = _PREPARING
            log.info("preparing runtime_env %s on this node", key)
            t = threading.Thread(target=self._prepare_env, args=(key,), daemon=True,
                                 name="raylite-runtime-env")
            self._env_threads = [x for x in self._env_threads if x.is_alive()] + [t]
            t.start()

    def _prepare_env(self, key: str) -> None:
        env, started = self._env_defs[key], time.monotonic()
        logs = os.path.join(self.session_dir, "logs")
        private.make_dir(logs)
        path = os.path.join(logs, f"runtime_env-{key}.log")
        with os.fdopen(private.open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as out:
            if env.get("pip"):
                log.warning("setting up runtime_env %s: installing %d pip requirement line(s); "
                            "pip's output goes to %s as it runs", key,
                            len(env["pip"]["packages"]), path)

            def line(text: str) -> None:
                out.write(text + "\n")
                out.flush()
            from .._runtime_env import node_cache  # packing, pip: only when an env is set up

            spec = node_cache.prepare(env, self.session_dir, self._fetch_package, line,
                                      self.stopped)
        if spec["error"]:
            log.error("runtime_env %s could not be set up: %s", key, spec["error"])
        elif env.get("pip"):
            log.warning("runtime_env %s is ready (%.1fs)", key, time.monotonic() - started)
        with self._lock:
            self._env_state[key] = time.monotonic() if spec["error"] else _READY
            for _ in range(self._env_pending.pop(key, 0)):
                self._spawn(key)

    def _stop_envs(self, timeout: float = STOP_WAIT_S) -> None:
        """The daemon stops (`stopped` is set): wait for setups under way, whose pip is
        ended within half a second of seeing it (no lock held)."""
        for t in list(self._env_threads):
            t.join(timeout)

    def _fetch_package(self, sha: str) -> bytes | None:
        """A package's bytes from the cluster's KV (never called with the lock held)."""
        if self.gcs_conn is None or self.stopped.is_set():
            return None
        reply = self.gcs_ep.call(self.gcs_conn, m.KvGet(0, kv_key(sha))).result(FETCH_TIMEOUT_S)
        return reply.value if reply.ok else None
