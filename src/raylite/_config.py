"""Every RAYLITE_* environment variable (and the RAY_* ones a Ray program sets instead),
read in this one place (a leaf module).

Nothing is read at import time: `from_env()` is called by init() and by the
daemons' mains, so a test may set variables before calling them.

    RAYLITE_ADDRESS      cluster to join when init() gets no address ("host:port",
                         "auto" or "local"); when unset, Ray's RAY_ADDRESS is read
    RAYLITE_NAMESPACE    namespace init() uses when it gets none; when unset, Ray's
                         RAY_NAMESPACE is read
    RAYLITE_AUTO_INIT    "0" turns off auto-init on the first remote call
    RAYLITE_LOCAL_MODE   "1" makes init() default to local_mode=True
    RAYLITE_RUNTIME      the registered runtime init() uses when not in local mode
                         (default "cluster"; see _runtime/factory.py)
    RAYLITE_TEMP_DIR     root of session directories and records (default /tmp/raylite_<uid>;
                         it must be ours with mode 0700, see _private_files)
    RAYLITE_LOG_TO_DRIVER "0" stops worker output from streaming to the driver
    RAYLITE_NODE_ID_PREFIX hex bytes that every node id a daemon makes starts with, so
                         its /dev/shm segments (raylite_<node id>_...) can be told apart
                         from other clusters' (the test suite's leak guard uses it)
    RAYLITE_ROTATION_MAX_BYTES    a daemon's log (<temp>/raylite_{head,node}.log) is rotated
                         when it reaches this size (default 10 MiB), as RAY_ROTATION_MAX_BYTES
    RAYLITE_ROTATION_BACKUP_COUNT rotated logs kept: .1 (newest) to .N (default 2)
    RAYLITE_RAY_ALIAS    "1" (set by `raylite run`): workers resolve `import ray` to raylite
    RAYLITE_IDLE_WORKER_KILL_MS  a node keeps as many idle workers as it has CPUs; one more
                         is stopped once idle this long (default 1000, Ray's
                         idle_worker_killing_time_threshold_ms; 0 keeps them all)
    RAYLITE_TASK_EVENTS_MAX_PER_JOB  task records the head keeps per job (default 100000);
                         past it the oldest finished go first, counted as dropped
    RAYLITE_HEALTH_CHECK_TIMEOUT_S  the head marks a node dead when it has heard nothing
                         from it for this long (default 10 s; a number > 0, e.g. 0.5 in tests)
    RAYLITE_MAX_LINEAGE_BYTES  the task specs and by-value arguments an owner keeps to rebuild
                         lost objects (default 1 GiB, as Ray's RAY_max_lineage_bytes, read
                         when this is unset); past it the oldest are let go
    RAYLITE_JOB_RUNTIME_ENV  the runtime_env of the submitted job this entrypoint runs, as JSON
                         (set by the job's supervisor): init() merges its own runtime_env over it
"""
from __future__ import annotations

from typing import NamedTuple

import os

ENV_VARS = ("RAYLITE_ADDRESS", "RAYLITE_NAMESPACE", "RAYLITE_AUTO_INIT", "RAYLITE_LOCAL_MODE",
            "RAYLITE_TEMP_DIR", "RAYLITE_LOG_TO_DRIVER", "RAYLITE_NODE_ID_PREFIX",
            "RAYLITE_ROTATION_MAX_BYTES", "RAYLITE_ROTATION_BACKUP_COUNT", "RAYLITE_RUNTIME",
            "RAYLITE_RAY_ALIAS", "RAYLITE_IDLE_WORKER_KILL_MS", "RAYLITE_TASK_EVENTS_MAX_PER_JOB",
            "RAYLITE_JOB_RUNTIME_ENV", "RAYLITE_HEALTH_CHECK_TIMEOUT_S",
            "RAYLITE_MAX_LINEAGE_BYTES")
ROTATION_MAX_BYTES = 10 * 2**20
ROTATION_BACKUP_COUNT = 2
IDLE_WORKER_KILL_MS = 1000
TASK_EVENTS_MAX_PER_JOB = 100_000
HEALTH_CHECK_TIMEOUT_S = 10.0
MAX_LINEAGE_BYTES = 1 << 30


def default_temp_dir() -> str:
    """/tmp/raylite_<uid>: each user has their own, so nobody else's can be found there."""
    return f"/tmp/raylite_{os.geteuid()}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"Cannot read {value!r} as a flag: use 1 or 0.")


def _hex(value: str | None) -> bytes:
    try:
        prefix = bytes.fromhex(value or "")
    except ValueError:
        raise ValueError(f"RAYLITE_NODE_ID_PREFIX={value!r} is not hex: use up to 4 hex digits.") from None
    if len(prefix) > 2:  # segment names carry 12 hex digits of the id: keep 8 of them random
        raise ValueError(f"RAYLITE_NODE_ID_PREFIX={value!r} is too long: use up to 4 hex digits.")
    return prefix


def _count(name: str, value: str | None, default: int, least: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        n = int(value)
    except ValueError:
        n = least - 1
    if n < least:
        raise ValueError(f"{name}={value!r} must be a whole number >= {least}.")
    return n


def _seconds(name: str, value: str | None, default: float) -> float:
    if value is None or value.strip() == "":
        return default
    try:
        v = float(value)
    except ValueError:
        v = 0.0
    if not 0 < v < float("inf"):
        raise ValueError(f"{name}={value!r} must be a number of seconds > 0.")
    return v


def _json_dict(name: str, value: str | None) -> dict | None:
    if not value:
        return None
    import json

    try:
        v = json.loads(value)
    except ValueError:
        v = None
    if not isinstance(v, dict):
        raise ValueError(f"{name} must be a JSON object, got {value[:200]!r}.")
    return v


class Config(NamedTuple):
    address: str | None
    auto_init: bool
    local_mode: bool
    temp_dir: str
    log_to_driver: bool
    node_id_prefix: bytes = b""
    rotation_max_bytes: int = ROTATION_MAX_BYTES
    rotation_backup_count: int = ROTATION_BACKUP_COUNT
    namespace: str | None = None
    runtime: str | None = None     # RAYLITE_RUNTIME: a registered runtime's name
    idle_worker_kill_ms: int = IDLE_WORKER_KILL_MS
    task_events_max_per_job: int = TASK_EVENTS_MAX_PER_JOB
    job_runtime_env: dict | None = None   # RAYLITE_JOB_RUNTIME_ENV, read as JSON
    health_check_timeout_s: float = HEALTH_CHECK_TIMEOUT_S
    max_lineage_bytes: int = MAX_LINEAGE_BYTES


def from_env(environ: "os._Environ[str] | dict[str, str] | None" = None) -> Config:
    env = os.environ if environ is None else environ
    try:
        return Config(
            address=env.get("RAYLITE_ADDRESS") or env.get("RAY_ADDRESS") or None,
            auto_init=_flag(env.get("RAYLITE_AUTO_INIT"), True),
            local_mode=_flag(env.get("RAYLITE_LOCAL_MODE"), False),
            temp_dir=env.get("RAYLITE_TEMP_DIR") or default_temp_dir(),
            log_to_driver=_flag(env.get("RAYLITE_LOG_TO_DRIVER"), True),
            node_id_prefix=_hex(env.get("RAYLITE_NODE_ID_PREFIX")),
            rotation_max_bytes=_count("RAYLITE_ROTATION_MAX_BYTES",
                                      env.get("RAYLITE_ROTATION_MAX_BYTES"), ROTATION_MAX_BYTES, 1),
            rotation_backup_count=_count("RAYLITE_ROTATION_BACKUP_COUNT",
                                         env.get("RAYLITE_ROTATION_BACKUP_COUNT"),
                                         ROTATION_BACKUP_COUNT, 0),
            namespace=env.get("RAYLITE_NAMESPACE") or env.get("RAY_NAMESPACE") or None,
            runtime=(env.get("RAYLITE_RUNTIME") or "").strip() or None,
            idle_worker_kill_ms=_count("RAYLITE_IDLE_WORKER_KILL_MS",
                                       env.get("RAYLITE_IDLE_WORKER_KILL_MS"), IDLE_WORKER_KILL_MS, 0),
            task_events_max_per_job=_count("RAYLITE_TASK_EVENTS_MAX_PER_JOB",
                                           env.get("RAYLITE_TASK_EVENTS_MAX_PER_JOB"),
                                           TASK_EVENTS_MAX_PER_JOB, 1),
            job_runtime_env=_json_dict("RAYLITE_JOB_RUNTIME_ENV", env.get("RAYLITE_JOB_RUNTIME_ENV")),
            health_check_timeout_s=_seconds("RAYLITE_HEALTH_CHECK_TIMEOUT_S",
                                            env.get("RAYLITE_HEALTH_CHECK_TIMEOUT_S"),
                                            HEALTH_CHECK_TIMEOUT_S),
            max_lineage_bytes=_count("RAYLITE_MAX_LINEAGE_BYTES",
                                     env.get("RAYLITE_MAX_LINEAGE_BYTES")
                                     or env.get("RAY_max_lineage_bytes"), MAX_LINEAGE_BYTES, 0),
        )
    except ValueError as e:
        raise ValueError(f"Bad RAYLITE_* environment variable: {e}") from None


def ray_alias(environ: "os._Environ[str] | dict[str, str] | None" = None) -> bool:
    """RAYLITE_RAY_ALIAS: whether this process runs a Ray program under `raylite run`."""
    env = os.environ if environ is None else environ
    return env.get("RAYLITE_RAY_ALIAS") == "1"
