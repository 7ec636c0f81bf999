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
        node_id: bytes) -> None:
    from .._runtime import install
    from .._runtime.cluster import ClusterRuntime
    from .output import forward_output
    from .task_executor import Executor

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
    signal.signal(signal.SIGINT, executor.interrupt)  # cancel()'s signal, for a running task only
    install(rt)
    forward_output(rt, executor, session_dir, worker_id)
    rt.register_worker()
    try:
        executor.run_forever()
    finally:
        rt.close_connections()
