"""runtime_env inheritance, on every runtime: what a task or actor started inside a task or
actor runs with.

Ray's rule (docs: "Runtime environments", Inheritance): a task or actor inherits the
runtime_env of its parent (the task or actor that submitted it; the job's, from
`init()`, when the driver submitted it). When it gives its own, its `env_vars` are
merged over the parent's and every other key it gives replaces the parent's.

The env_vars tests run on Ray too (RAYLITE_RUNTIME=ray), so the same assertions hold on
Ray 2.60. working_dir, py_modules and the setup hook are raylite's tier only: Ray takes
local directories (and a callable hook) in ray.init() only, and that tier joins one Ray.
"""
import os
import sys

import pytest

import raylite

KEYS = ("JOB", "P", "B", "C")


def seen():
    """The env_vars this task sees, and what get_runtime_context() says it was given."""
    env = raylite.get_runtime_context().runtime_env or {}
    return {k: os.environ.get(k) for k in KEYS}, {k: v for k, v in (env.get("env_vars") or {}).items()
                                                  if k in KEYS}


@raylite.remote
def child():
    return seen()


@raylite.remote
def parent(own, leaf="child"):
    """Runs the task named `leaf` (LEAVES) with `own` as its runtime_env (None: none)."""
    task = LEAVES[leaf]
    return raylite.get((task.options(runtime_env=own) if own is not None else task).remote())


@raylite.remote
def grandparent(own):
    return raylite.get(parent.options(runtime_env={"env_vars": {"C": "c-mid"}}).remote(own))


@raylite.remote
class Holder:
    def child_env(self):
        return raylite.get(child.remote())

    def make_and_ask(self):
        inner = Holder.remote()
        return raylite.get(inner.own_env.remote())

    def own_env(self):
        return seen()


@raylite.remote
def make_actor_and_ask():
    h = Holder.remote()
    return raylite.get(h.own_env.remote())


JOB = {"env_vars": {"JOB": "j", "B": "job"}}
PARENT = {"env_vars": {"P": "p", "B": "parent"}}


def test_a_nested_task_inherits_its_parents_env_vars(runtime_kwargs):
    raylite.init(runtime_env=JOB, **runtime_kwargs)
    vars_, given = raylite.get(parent.options(runtime_env=PARENT).remote(None))
    assert vars_ == {"JOB": "j", "P": "p", "B": "parent", "C": None}
    assert given == {"JOB": "j", "P": "p", "B": "parent"}


def test_a_nested_tasks_own_env_vars_are_merged_over_its_parents(runtime_kwargs):
    raylite.init(runtime_env=JOB, **runtime_kwargs)
    own = {"env_vars": {"B": "child", "C": "c"}}
    vars_, given = raylite.get(parent.options(runtime_env=PARENT).remote(own))
    assert vars_ == {"JOB": "j", "P": "p", "B": "child", "C": "c"}
    assert given == vars_
    # two levels down: each level's over the one above it
    vars_, _ = raylite.get(grandparent.options(runtime_env=PARENT).remote({"env_vars": {"B": "leaf"}}))
    assert vars_ == {"JOB": "j", "P": "p", "B": "leaf", "C": "c-mid"}


def test_a_task_from_the_driver_inherits_the_jobs_env_only(runtime_kwargs):
    raylite.init(runtime_env=JOB, **runtime_kwargs)
    vars_, given = raylite.get(parent.remote(None))  # a parent with no env of its own
    assert vars_ == {"JOB": "j", "P": None, "B": "job", "C": None}
    assert given == {"JOB": "j", "B": "job"}
    assert "P" not in os.environ and "JOB" not in os.environ  # the driver's own stays as it was


def test_actors_pass_their_env_vars_on_and_inherit_their_creators(runtime_kwargs):
    raylite.init(runtime_env=JOB, **runtime_kwargs)
    h = Holder.options(runtime_env=PARENT).remote()
    want = {"JOB": "j", "P": "p", "B": "parent", "C": None}
    assert raylite.get(h.child_env.remote())[0] == want          # a task the actor submits
    assert raylite.get(h.make_and_ask.remote())[0] == want       # an actor the actor creates
    # an actor created by a task keeps that task's env for its whole life
    assert raylite.get(make_actor_and_ask.options(runtime_env=PARENT).remote())[0] == want


@pytest.mark.cluster_only("local mode runs a task's thread in the driver, outside any task")
def test_a_thread_of_a_task_submits_in_the_tasks_env(runtime_kwargs):
    raylite.init(runtime_env=JOB, **runtime_kwargs)

    @raylite.remote
    def threaded():
        import threading

        out = []
        t = threading.Thread(target=lambda: out.append(raylite.get(child.remote())))
        t.start()
        t.join(60)
        return out[0][0]

    assert raylite.get(threaded.options(runtime_env=PARENT).remote()) == \
        {"JOB": "j", "P": "p", "B": "parent", "C": None}


# -- the keys that need a process of their own: raylite's runtimes -------------------------
raylite_only = pytest.mark.raylite_only(
    "Ray takes a local working_dir, py_modules and a callable hook only in ray.init(), and "
    "this tier joins one shared Ray")

HOOK_PIDS = []


def setup_hook():
    HOOK_PIDS.append(os.getpid())


@pytest.fixture
def dirs(tmp_path):
    """Two working_dirs (each with its own `rtinh_mod`) and a package directory."""
    out = {}
    for name in ("wd_a", "wd_b"):
        d = tmp_path / name
        d.mkdir()
        (d / "rtinh_mod.py").write_text(f"WHERE = {name!r}\n")
    pkg = tmp_path / "mods" / "rtinh_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("WHERE = 'pkg'\n")
    out["pkg"] = str(pkg)
    path, modules = list(sys.path), set(sys.modules)
    yield {**out, "a": str(tmp_path / "wd_a"), "b": str(tmp_path / "wd_b")}
    sys.path[:] = path  # local mode puts them on this process's sys.path
    for name in set(sys.modules) - modules:
        if name.startswith("rtinh_"):  # (raylite's own modules imported meanwhile stay)
            del sys.modules[name]
    HOOK_PIDS.clear()


def where():
    """Which working_dir's module this process imports, and whether the package is there."""
    import importlib

    try:
        pkg = importlib.import_module("rtinh_pkg").WHERE
    except ImportError:
        pkg = None
    return importlib.import_module("rtinh_mod").WHERE, pkg, os.environ.get("C")


@raylite.remote
def where_task():
    return where()


LEAVES = {"child": child, "where": where_task}


@raylite_only
def test_a_nested_task_inherits_its_parents_working_dir_and_py_modules(runtime_kwargs, dirs):
    raylite.init(**runtime_kwargs)
    parent_env = {"working_dir": dirs["a"], "py_modules": [dirs["pkg"]]}
    assert raylite.get(parent.options(runtime_env=parent_env).remote(None, "where")) == \
        ("wd_a", "pkg", None)
    # its own env_vars only: the parent's other keys are inherited
    assert raylite.get(parent.options(runtime_env=parent_env).remote(
        {"env_vars": {"C": "c"}}, "where")) == ("wd_a", "pkg", "c")


@raylite_only
@pytest.mark.cluster_only("local mode has one process: a module imported once stays imported")
def test_a_nested_tasks_own_working_dir_replaces_its_parents(runtime_kwargs, dirs):
    raylite.init(runtime_env={"working_dir": dirs["a"]}, **runtime_kwargs)
    assert raylite.get(where_task.remote())[0] == "wd_a"
    parent_env = {"py_modules": [dirs["pkg"]]}  # the job's working_dir, and a package
    assert raylite.get(parent.options(runtime_env=parent_env).remote(
        {"working_dir": dirs["b"]}, "where")) == ("wd_b", "pkg", None)


@raylite_only
def test_a_nested_task_inherits_its_parents_setup_hook(runtime_kwargs):
    raylite.init(**runtime_kwargs)

    @raylite.remote
    def hooked():
        return os.getpid(), list(sys.modules[setup_hook.__module__].HOOK_PIDS)

    @raylite.remote(runtime_env={"worker_process_setup_hook": setup_hook})
    def outer():
        return raylite.get(hooked.remote())

    pid, pids = raylite.get(outer.remote())
    assert pid in pids  # the hook ran in the child's process before it ran


@raylite.remote
def pip_probe():
    try:
        import rtinh_pip_mod

        value = rtinh_pip_mod.VALUE
    except ImportError:
        value = None
    import importlib.util

    return value, sys.prefix, importlib.util.find_spec("rtinh_pkg") is not None


@raylite_only
@pytest.mark.cluster_only("local mode refuses pip")
def test_a_nested_task_inherits_its_parents_pip_venv_unless_it_gives_its_own(runtime_kwargs,
                                                                             dirs, tmp_path):
    from wheels import make_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "rtinh_pip_mod", "from the parent's venv")
    raylite.init(**runtime_kwargs)
    env = {"pip": ["--no-index", f"--find-links {wheels}", "rtinh_pip_mod==0.1"]}

    @raylite.remote
    def parent_of_probe(own):
        here = sys.prefix
        task = pip_probe.options(runtime_env=own) if own is not None else pip_probe
        return here, raylite.get(task.remote())

    here, (value, prefix, _) = raylite.get(parent_of_probe.options(runtime_env=env).remote(None))
    assert (value, prefix) == ("from the parent's venv", here)
    # its own py_modules: the parent's pip stays, the package is added
    _, (value, prefix, pkg) = raylite.get(parent_of_probe.options(runtime_env=env).remote(
        {"py_modules": [dirs["pkg"]]}))
    assert (value, prefix, pkg) == ("from the parent's venv", here, True)
    # its own pip (none): it replaces the parent's, so it runs outside that venv, without its
    # packages (the parent's import path, which travels with what it submits, leaves them out)
    _, (value, prefix, _) = raylite.get(parent_of_probe.options(runtime_env=env).remote(
        {"pip": []}))
    assert value is None and prefix != here
