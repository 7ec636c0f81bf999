"""`raylite run script.py [args]`: a Ray program, unchanged, runs on raylite."""
import os
import subprocess
import sys

import raylite

HELPER = """
import ray

def scale(x):  # a plain function: travels by reference, so workers import this module
    return 3 * x

@ray.remote
def triple(x):
    return scale(x)
"""

PROGRAM = """
import sys
import ray
import ray.util
from ray.exceptions import RayTaskError
from ray.util import ActorPool
from helper import triple  # a module of the program that imports ray, imported by workers

ray.init()

@ray.remote
def square(x):
    return x * x

@ray.remote
class Acc:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n

@ray.remote
def boom():
    raise ValueError("no")

print("squares", ray.get([square.remote(i) for i in range(4)]))
print("triple", ray.get(triple.remote(5)))
pool = ActorPool([Acc.remote()])
print("pool", list(pool.map(lambda a, v: a.add.remote(v), [1, 2])))
try:
    ray.get(boom.remote())
except RayTaskError as e:
    print("caught", type(e.cause).__name__)
print("argv", sys.argv[1:], __name__, ray is sys.modules["raylite"], ray.util.__name__)
sys.exit(int(sys.argv[1]))
"""


def run(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "raylite", "run", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, RAYLITE_TEMP_DIR=str(tmp_path / "temp"), **(env or {})))


def test_a_ray_program_runs_unchanged_on_a_cluster(tmp_path):
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "helper.py").write_text(HELPER)
    (tmp_path / "prog" / "main.py").write_text(PROGRAM)
    out = run(tmp_path, "prog/main.py", "3", "--flag")  # the script's arguments, not ours
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines() == [
        "squares [0, 1, 4, 9]", "triple 15", "pool [1, 3]", "caught ValueError",
        "argv ['3', '--flag'] __main__ True raylite.util"]


def test_module_form_and_local_mode(tmp_path):
    (tmp_path / "job.py").write_text("import sys, ray\nray.init()\n"
                                     "print(ray.get(ray.put(sys.argv[1:])))\n")
    out = run(tmp_path, "-m", "job", "a", "b", env={"RAYLITE_LOCAL_MODE": "1"})
    assert out.returncode == 0 and out.stdout.strip() == "['a', 'b']", out.stderr


def test_what_raylite_lacks_is_named(tmp_path):
    (tmp_path / "data.py").write_text("import ray.data\n")
    (tmp_path / "private.py").write_text("import ray._private.utils\n")
    for script, missing in (("data.py", "raylite has no raylite.data"),
                            ("private.py", "No module named 'ray._private'")):
        out = run(tmp_path, script)
        assert out.returncode == 1 and "ModuleNotFoundError" in out.stderr, out.stderr
        assert missing in out.stderr
    out = run(tmp_path, "missing.py")
    assert out.returncode == 2 and "missing.py: no such file" in out.stderr


def test_programs_that_import_raylite_never_meet_the_alias():
    def aliased():
        return any(type(f).__name__ == "RayAlias" for f in sys.meta_path) or \
            sys.modules.get("ray") is raylite  # Ray itself may be imported here (the Ray tier)

    raylite.init(num_cpus=1)
    try:
        assert not aliased()
        assert raylite.get(raylite.remote(aliased).remote()) is False  # nor do its workers
    finally:
        raylite.shutdown()
