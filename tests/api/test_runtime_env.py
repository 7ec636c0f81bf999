"""runtime_env beyond env_vars, on every runtime: working_dir, py_modules, the setup hook, pip.

On the cluster a working_dir is packed, uploaded, unpacked on the node and becomes the
workers' cwd; local mode puts it on sys.path only (its tasks share the driver's process),
and refuses pip. Ray is not asked here: its runtime_env needs its own package cache.
"""
import os
import sys

import pytest
from wheels import make_wheel

import raylite
from raylite.exceptions import ActorDiedError, RuntimeEnvSetupError

HOOK_CALLS = []   # appended to by hook(), in whatever process runs it

pytestmark = pytest.mark.raylite_only("raylite's runtime_env: Ray's needs its own package cache")


def hook():
    HOOK_CALLS.append(os.getpid())


def failing_hook():
    raise OSError("the hook could not mount its data")


@pytest.fixture(autouse=True)
def restore_import_state():
    """Local mode changes this process's sys.path and imports: undone after each test."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    HOOK_CALLS.clear()


@pytest.fixture
def working_dir(tmp_path):
    wd = tmp_path / "wd"
    (wd / ".git").mkdir(parents=True)
    (wd / "data").mkdir()
    (wd / "rtenv_wd_mod.py").write_text("VALUE = 'from working_dir'\n")
    (wd / "notes.txt").write_text("hello\n")
    (wd / "data" / "big.bin").write_bytes(b"\0" * 100)
    (wd / ".git" / "config").write_text("[core]\n")
    return wd


def read_working_dir():
    import rtenv_wd_mod

    return (rtenv_wd_mod.VALUE, os.getcwd(), sorted(os.listdir(".")), os.getpid())


def test_job_working_dir_reaches_tasks_and_actors(runtime_kwargs, working_dir):
    raylite.init(runtime_env={"working_dir": str(working_dir), "excludes": ["data/"]},
                 **runtime_kwargs)
    value, cwd, files, _ = raylite.get(raylite.remote(read_working_dir).remote())
    assert value == "from working_dir"

    @raylite.remote
    class Reader:
        def read(self):
            return read_working_dir()

    assert raylite.get(Reader.remote().read.remote())[:3] == (value, cwd, files)
    if runtime_kwargs.get("local_mode"):  # tasks run in the driver: the cwd stays the driver's
        assert cwd == os.getcwd()
        return
    assert cwd.startswith(os.path.join(raylite._runtime.current().session_dir,
                                       "runtime_resources", "pkgs")), cwd
    assert files == ["notes.txt", "rtenv_wd_mod.py"]  # .git left out always, data/ by excludes
    assert os.stat(cwd).st_mode & 0o077 == 0


@pytest.mark.cluster_only("local mode has one process: no pool of workers to keep apart")
def test_workers_of_different_runtime_envs_are_not_mixed(runtime_kwargs, working_dir):
    raylite.init(**runtime_kwargs)

    @raylite.remote
    def plain():
        try:
            import rtenv_wd_mod  # noqa: F401
            return "imported", os.getpid()
        except ImportError:
            return "not importable", os.getpid()

    in_env = raylite.remote(read_working_dir).options(runtime_env={"working_dir": str(working_dir)})
    env_pids = {raylite.get(in_env.remote())[3] for _ in range(3)}
    plain_runs = [raylite.get(plain.remote()) for _ in range(3)]
    assert {what for what, _ in plain_runs} == {"not importable"}
    assert not env_pids & {pid for _, pid in plain_runs}
    assert {raylite.get(in_env.remote())[3] for _ in range(2)} <= env_pids  # reused


def test_per_task_working_dir_merges_with_the_jobs_env_vars(runtime_kwargs, working_dir):
    raylite.init(runtime_env={"env_vars": {"RTENV_JOB": "job"}}, **runtime_kwargs)

    @raylite.remote(runtime_env={"working_dir": str(working_dir), "env_vars": {"RTENV_T": "t"}})
    def both():
        import rtenv_wd_mod

        return rtenv_wd_mod.VALUE, os.environ.get("RTENV_JOB"), os.environ.get("RTENV_T")

    assert raylite.get(both.remote()) == ("from working_dir", "job", "t")


def test_py_modules_directories_and_wheels(ray, tmp_path):
    pkg = tmp_path / "mods" / "rtenv_pkg_mod"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'from a package directory'\n")
    wheel = make_wheel(str(tmp_path), "rtenv_wheel_mod", "from a wheel")

    @ray.remote(runtime_env={"py_modules": [str(pkg), wheel]})
    def use():
        import rtenv_pkg_mod
        import rtenv_wheel_mod

        return rtenv_pkg_mod.VALUE, rtenv_wheel_mod.VALUE, rtenv_wheel_mod.__file__, sys.prefix

    pkg_value, wheel_value, wheel_file, prefix = ray.get(use.remote())
    assert (pkg_value, wheel_value) == ("from a package directory", "from a wheel")
    if ray._runtime.current().name != "local":  # local mode imports the wheel (zipimport)
        # pip installed it into a venv of the env's own, as Ray does
        assert prefix.startswith(os.path.join(ray._runtime.current().session_dir,
                                              "runtime_resources", "pip"))
        assert wheel_file.startswith(prefix) and "site-packages" in wheel_file


def test_a_nested_task_keeps_its_parents_env_and_adds_its_own(ray, working_dir, tmp_path):
    pkg = tmp_path / "mods" / "rtenv_nested_mod"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'nested'\n")

    @ray.remote
    def child():
        import rtenv_nested_mod
        import rtenv_wd_mod

        return rtenv_wd_mod.VALUE, rtenv_nested_mod.VALUE, os.path.exists("notes.txt")

    @ray.remote(runtime_env={"working_dir": str(working_dir)})
    def parent():
        return ray.get(child.options(runtime_env={"py_modules": [str(pkg)]}).remote())

    in_workers = ray._runtime.current().name != "local"   # local mode keeps the driver's cwd
    assert ray.get(parent.remote()) == ("from working_dir", "nested", in_workers)


def test_setup_hook_runs_once_per_worker_before_its_first_task(ray, working_dir):
    (working_dir / "rtenv_hook_mod.py").write_text(
        "import os\nCALLS = []\ndef setup():\n    CALLS.append(os.getpid())\n")

    @ray.remote(runtime_env={"worker_process_setup_hook": hook})
    def by_callable():
        return list(sys.modules[hook.__module__].HOOK_CALLS), os.getpid()  # this process's list

    calls, pid = ray.get(by_callable.remote())
    assert calls == [pid]
    calls, pid2 = ray.get(by_callable.remote())
    assert pid2 != pid or calls == [pid]   # the same worker does not run it again

    @ray.remote(runtime_env={"working_dir": str(working_dir),
                             "worker_process_setup_hook": "rtenv_hook_mod.setup"})
    def by_name():
        import rtenv_hook_mod

        return list(rtenv_hook_mod.CALLS), os.getpid()

    calls, pid = ray.get(by_name.remote())
    assert calls == [pid]


def test_a_failing_setup_hook_fails_the_task_with_runtime_env_setup_error(ray):
    @ray.remote(runtime_env={"worker_process_setup_hook": failing_hook})
    def never():
        return "ran"

    with pytest.raises(RuntimeEnvSetupError, match="could not mount its data"):
        ray.get(never.remote())

    @ray.remote(runtime_env={"worker_process_setup_hook": failing_hook})
    class Never:
        def ping(self):
            return "ran"

    # the actor dies of it: its calls say why (ActorDiedError on a cluster, as a failed __init__)
    with pytest.raises((RuntimeEnvSetupError, ActorDiedError), match="RuntimeEnvSetupError.*mount"):
        ray.get(Never.remote().ping.remote())


@pytest.mark.parametrize("key, value", [("conda", "myenv"), ("container", {"image": "x"}),
                                        ("image_uri", "docker.io/x"), ("no_such_key", 1)])
def test_what_raylite_does_not_run_is_refused_naming_the_key(ray, key, value):
    @ray.remote(runtime_env={key: value})
    def f():
        return 1

    with pytest.raises(ValueError, match=f"'{key}'.*supports.*working_dir"):
        f.remote()


def test_pip_installs_a_local_wheel_into_a_venv_of_its_own(ray, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "rtenv_pip_demo", "installed by pip")
    env = {"pip": ["--no-index", f"--find-links {wheels}", "rtenv_pip_demo==0.1"]}

    @ray.remote(runtime_env=env)
    def use():
        import rtenv_pip_demo

        return rtenv_pip_demo.VALUE, sys.prefix, raylite.__name__

    if ray._runtime.current().name == "local":
        with pytest.raises(ValueError, match="pip.*local mode"):
            use.remote()
        return
    value, prefix, _ = ray.get(use.remote())
    assert value == "installed by pip"
    assert prefix.startswith(os.path.join(ray._runtime.current().session_dir, "runtime_resources",
                                          "pip"))
    assert ray.get(use.remote())[1] == prefix  # the venv is made once, then reused

    @ray.remote
    def outside():
        try:
            import rtenv_pip_demo  # noqa: F401
            return "importable"
        except ImportError:
            return sys.prefix

    assert ray.get(outside.remote()) != "importable"


@pytest.mark.cluster_only("local mode refuses pip")
def test_a_pip_failure_names_the_last_lines_of_pips_output(ray):
    @ray.remote(runtime_env={"pip": ["--no-index", "rtenv-no-such-package==9.9"]})
    def f():
        return 1

    with pytest.raises(RuntimeEnvSetupError) as info:
        ray.get(f.remote())
    text = str(info.value)
    assert "rtenv-no-such-package" in text and "pip" in text and "exited with code" in text
