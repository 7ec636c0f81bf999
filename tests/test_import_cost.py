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
print(json.dumps({"heavy": heavy, "threads": threading.active_count() - before,
                  "atexit": atexit._ncallbacks() - hooks, "init": raylite.is_initialized()}))
"""


def test_import_is_cheap_and_inert():
    env = dict(os.environ, RAYLITE_AUTO_INIT="garbage", RAYLITE_ADDRESS="not an address")
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts == {"heavy": [], "threads": 0, "atexit": 0, "init": False}
