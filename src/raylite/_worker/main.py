"""A worker process: forked by the node's zygote, runs tasks and hosts actors.

    zygote fork ─► run() ─► connect to the daemon (on failure: why, on stderr, which is the
                            node's log, and exit code 1; the daemon starts another)
                        ─► stdout/stderr piped to a forwarder thread (output.py: the
                           worker's log files, and LogLines to the daemon)
                        ─► ClusterRuntime (core worker: serves owners, owns nested refs)
                        ─► Executor.run_forever() on the main thread, until the daemon goes away

The main thread runs tasks so that cancel() can interrupt them with SIGINT.
"""
from __future__ import annotations

from typing import Any

import os
import signal
import sys
import time



def preload() -> None:
    """Imports everything run() needs. The node's fork server calls it once, so the workers
    it forks share these modules and start without importing them."""
    from .. import _ray_alias  # noqa: F401
    from .._runtime import cluster  # noqa: F401
    from . import actor_host, output, task_executor  # noqa: F401


def run(daemon_address: str, token: bytes, worker_id: bytes, session_dir: str,
        node_id: bytes, env: str | None = None, execd: bool = False) -> None:
    """Serves tasks until the daemon goes away. `env`: the runtime_env key this worker was
    started for (its spec, under the session dir, is entered first; a pip venv's python
    re-executes this worker, `execd` then)."""
    from .._runtime import install
    from .._runtime.cluster import ClusterRuntime
    from .output import forward_output
    from .task_executor import Executor

    spec = None
    if env is not None:
        from .._runtime_env import worker as rtenv

        spec = rtenv.load(session_dir, env)
        if spec.get("python") and not spec.get("error") and not execd:
            rtenv.exec_worker(spec["python"], {
                "address": daemon_address, "token": token.hex(), "worker_id": worker_id.hex(),
                "session_dir": session_dir, "node_id": node_id.hex(), "env": env}, spec)
        rtenv.enter(spec)
    os.environ["RAYLITE_WORKER"] = "1"
    from .._ray_alias import install_if_asked

    install_if_asked()  # a Ray program's modules (`import ray`) load here too under `raylite run`
    try:
        rt = ClusterRuntime.for_worker(daemon_address, token, worker_id, session_dir, node_id)
    except (ConnectionError, OSError) as e:  # said in the node's log (our stderr is the daemon's)
        # ... unless the daemon is stopping: then the fork server kills us within this pause,
        # and a quick init(); shutdown() prints nothing.
        time.sleep(0.5)
        print(f"raylite worker (pid {os.getpid()}): cannot connect to the node daemon at "
              f"{daemon_address}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    executor = Executor(rt)
    rt.executor = executor
    if spec is not None:
        executor.env = rtenv.WorkerEnv(spec)
        rt.resolved_env = spec.get("env")  # nested tasks and actors inherit it
        if execd:  # in the env's venv: its packages are not passed on to what it submits
            from .._runtime import cluster_tasks

            cluster_tasks.ENV_PREFIX = os.path.abspath(sys.prefix)
    signal.signal(signal.SIGINT, executor.interrupt)  # cancel()'s signal, for a running task only
    install(rt)
    forward_output(rt, executor, session_dir, worker_id)
    rt.register_worker()
    try:
        executor.run_forever()
    finally:
        rt.close_connections()


def exec_main() -> None:
    """A worker re-executed by a runtime_env's python (runtime_env.worker.exec_worker):
    its settings come through the pipe named in argv."""
    import json

    def body() -> None:  # the fork server's death signal (PR_SET_PDEATHSIG) is kept across exec
        with os.fdopen(int(sys.argv[1]), "rb") as f:
            s = json.loads(f.read())
        run(s["address"], bytes.fromhex(s["token"]), bytes.fromhex(s["worker_id"]),
            s["session_dir"], bytes.fromhex(s["node_id"]), s["env"], execd=True)

    run_to_exit(body)


def run_to_exit(body: Any) -> None:
    """Runs a worker process's `body`, then ends the process with its exit code through
    os._exit (a forked worker must not run the fork server's atexit handlers), after
    flushing its output; an uncaught exception is printed and exits 1."""
    code = 0
    try:
        body()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(code)
