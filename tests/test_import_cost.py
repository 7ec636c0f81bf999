"""`import raylite` is cheap and does nothing: no heavy modules, threads, hooks or env reads."""
import json
import os
import subprocess
import sys

CODE = """
import atexit, json, sys, threading
import cloudpickle  # raylite's one dependency (it imports logging, which registers its own hook)
before = threading.active_count()
hooks = atexit._ncallbacks()
import raylite
heavy = [m for m in ("numpy", "psutil", "http", "urllib.request", "asyncio",
                     "concurrent.futures", "selectors", "subprocess") if m in sys.modules]
print(json.dumps({"heavy": heavy, "threads": threading.active_count(),
                  "new_threads": threading.active_count() - before,
                  "atexit": atexit._ncallbacks() - hooks, "init": raylite.is_initialized(),
                  "slot": raylite._runtime._slot is not None}))
"""


def test_import_is_cheap_and_inert():
    # garbage in every variable init() reads: import must not read them (from_env() would raise)
    env = dict(os.environ, RAYLITE_AUTO_INIT="garbage", RAYLITE_ADDRESS="not an address",
               RAYLITE_LOCAL_MODE="garbage", RAYLITE_LOG_TO_DRIVER="garbage",
               RAYLITE_RUNTIME="garbage")
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts == {"heavy": [], "threads": 1, "new_threads": 0, "atexit": 0, "init": False,
                     "slot": False}


def test_the_garbage_is_rejected_once_init_reads_it():
    code = "import raylite\ntry:\n    raylite.init(local_mode=True)\nexcept ValueError as e:\n" \
           "    print('rejected:', e)\n"
    env = dict(os.environ, RAYLITE_AUTO_INIT="garbage")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and "rejected: Bad RAYLITE_* environment variable" in out.stdout


PRELOAD = """
import json, sys
from raylite._node import worker_pool
worker_pool.preload()  # what the node daemon does before forking its fork server
before = set(sys.modules)
from raylite._runtime import install  # what a forked worker's run() imports
from raylite._runtime.cluster import ClusterRuntime
from raylite._worker import actor_host, main, task_executor
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_fork_servers_preload_leaves_a_worker_nothing_to_import():
    out = subprocess.run([sys.executable, "-c", PRELOAD], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []  # forked workers share the modules: they start fast
