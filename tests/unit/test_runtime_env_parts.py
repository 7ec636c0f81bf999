"""runtime_env's pieces without a cluster: packing and its hash, excludes, the size limit,
validation and merging, the node's package cache, and the scheduler keeping envs apart."""
import os
import stat

import pytest

from raylite import _private_files as private
from raylite._node import scheduler as sch
from raylite._runtime_env import node_cache, packing, validate
from raylite._runtime_env.resolve import Resolver, inherit, kv_key, pip_spec
from raylite.exceptions import RuntimeEnvSetupError


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    (d / "pkg").mkdir(parents=True)
    (d / ".git").mkdir()
    (d / "logs").mkdir()
    (d / "main.py").write_text("print(1)\n")
    (d / "pkg" / "mod.py").write_text("X = 1\n")
    (d / ".git" / "HEAD").write_text("ref\n")
    (d / "logs" / "a.log").write_text("log\n")
    return d


def test_the_same_files_pack_to_the_same_bytes_and_hash(src, tmp_path):
    a = packing.pack(str(src))
    os.utime(src / "main.py", (1, 1))  # timestamps are not content
    b = packing.pack(str(src))
    assert a == b and len(a.sha) == 64
    (src / "main.py").write_text("print(2)\n")
    assert packing.pack(str(src)).sha != a.sha
    assert packing.pack(str(src), prefix="src").sha != packing.pack(str(src)).sha


def test_git_is_always_left_out_and_excludes_are_honoured(src, tmp_path):
    out = tmp_path / "out"
    packing.unpack(packing.pack(str(src), ["logs/", "*.pyc"]).data, str(out))
    assert _tree(out) == ["main.py", "pkg/mod.py"]
    out2 = tmp_path / "out2"
    packing.unpack(packing.pack(str(src), ["/main.py"], prefix="top").data, str(out2))
    assert _tree(out2) == ["top/logs/a.log", "top/pkg/mod.py"]
    assert stat.S_IMODE(os.stat(out2 / "top" / "pkg" / "mod.py").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out2 / "top").st_mode) == 0o700


def test_the_size_limit_names_the_size_and_excludes(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * 3 * 2**20)
    with pytest.raises(ValueError, match=r"3\.0 MiB.*limit of 2 MiB.*excludes"):
        packing.pack(str(tmp_path), max_bytes=2 * 2**20)
    assert packing.pack(str(tmp_path), ["*.bin"], max_bytes=2 * 2**20).data


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a directory here"):
        packing.pack(str(tmp_path / "nope"))


def test_check_merge_and_refusals():
    assert validate.check(None) is None
    assert validate.check({"pip": ["a"]}) == {"pip": ["a"], "env_vars": {}}
    for bad, words in (({"pip": 3}, "pip"), ({"py_modules": "x"}, "py_modules"),
                       ({"working_dir": "s3://b/x.zip"}, "URI"), ({"excludes": "x"}, "excludes"),
                       ({"worker_process_setup_hook": 3}, "hook"), ({"config": 1}, "config"),
                       ({"env_vars": {"A": 1}}, "str -> str")):
        with pytest.raises(ValueError, match=words):
            validate.check(bad)
    validate.check({"conda": "x"})  # kept: the Ray runtime passes it on
    for key in ("conda", "container", "image_uri", "uv", "whatever"):
        with pytest.raises(ValueError, match=f"'{key}'.*raylite supports"):
            validate.refuse_unsupported({key: 1})
    job = {"working_dir": "/a", "env_vars": {"A": "1", "B": "1"}}
    assert validate.merge(job, {"pip": ["x"], "env_vars": {"B": "2"}}) == {
        "working_dir": "/a", "pip": ["x"], "env_vars": {"A": "1", "B": "2"}}
    assert validate.merge(job, None) is job and validate.merge(None, job) is job


def test_a_child_in_a_worker_inherits_the_resolved_keys_it_does_not_give():
    # Ray's rule on the resolved form: each key the child gives replaces the parent's
    sha = lambda c: c * 64  # noqa: E731
    parent = {"working_dir": sha("a"), "py_modules": [sha("b")], "wheels": [[sha("c"), "w-1-py3-none-any.whl"]],
              "pip": {"packages": ["req==1"], "options": ["-q"], "timeout": 30.0}, "setup_hook": "m.f"}
    assert inherit(parent, None, None) is parent
    assert inherit(parent, {"env_vars": {"A": "1"}}, None) == parent
    got = inherit(parent, {"working_dir": "here"}, {"working_dir": sha("d")})
    assert got == {**parent, "working_dir": sha("d")}
    # its py_modules replace the parent's directories and wheels; the parent's pip stays
    got = inherit(parent, {"py_modules": ["pkg"]}, {"py_modules": [sha("e")]})
    assert (got["py_modules"], "wheels" in got) == ([sha("e")], False)
    assert got["pip"] == parent["pip"]
    # its pip replaces the requirements, the parent's wheels stay and still need the venv
    got = inherit(parent, {"pip": ["other"]}, {"pip": {"packages": ["other"], "options": [],
                                                       "timeout": 600.0}})
    assert got["pip"] == {"packages": ["other"], "options": [], "timeout": 30.0}
    assert got["wheels"] == parent["wheels"]
    # no requirements and no wheels: no venv; an empty key given clears the parent's
    bare = inherit({"pip": {"packages": ["x"], "options": [], "timeout": 5.0}}, {"pip": []}, None)
    assert bare is None
    assert "setup_hook" not in inherit(parent, {"worker_process_setup_hook": None}, None)
    assert inherit(parent, {"config": {"setup_timeout_seconds": 9}}, None)["pip"]["timeout"] == 9.0
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        inherit(parent, {"config": {"setup_timeout_seconds": -1}}, None)


def test_resolved_envs_are_checked_as_a_daemon_receives_them():
    sha = "ab" * 32
    good = {"working_dir": sha, "py_modules": [sha], "setup_hook": "m.f",
            "pip": {"packages": ["x"], "options": [], "timeout": 10.0}}
    assert validate.check_resolved(good) is None and validate.check_resolved(None) is None
    for bad in ({"working_dir": "../x"}, {"py_modules": ["x"]}, {"pip": {"packages": "x"}},
                {"setup_hook": 3}, {"other": 1}, "text"):
        assert validate.check_resolved(bad) is not None
    wheel = {"wheels": [[sha, "a_b-0.1-py3-none-any.whl"]], "pip": good["pip"]}
    assert validate.check_resolved(wheel) is None
    for name in ("../x.whl", "a/b.whl", "x.zip", ".hidden.whl"):
        assert validate.check_resolved({**wheel, "wheels": [[sha, name]]}) is not None
    assert validate.check_resolved({"wheels": wheel["wheels"]}) is not None  # no pip spec
    assert validate.env_key(good) == validate.env_key(dict(reversed(good.items())))
    assert validate.env_key(None) is None


class _Store:
    def __init__(self):
        self.data, self.puts = {}, 0

    def has(self, key):
        return key in self.data

    def put(self, key, value):
        self.puts += 1
        self.data[key] = value


def test_resolver_uploads_each_package_once(src, tmp_path):
    store = _Store()
    r = Resolver(store)
    env = r.resolve({"working_dir": str(src), "env_vars": {"A": "1"}})
    assert set(env) == {"working_dir"} and kv_key(env["working_dir"]) in store.data
    assert r.resolve({"working_dir": str(src)}) == env
    assert Resolver(store).resolve({"working_dir": str(src)}) == env  # already in the store
    assert store.puts == 1
    assert r.resolve({"env_vars": {"A": "1"}}) is None
    req = tmp_path / "requirements.txt"
    req.write_text("# pinned\nrequests==1\n\n--no-index\n")
    assert pip_spec(str(req))["packages"] == ["requests==1", "--no-index"]
    with pytest.raises(ValueError, match="not a .whl"):
        r.resolve({"py_modules": [str(src / "main.py")]})


def test_the_node_fetches_a_package_it_lacks_once_and_checks_its_hash(src, tmp_path):
    pkg = packing.pack(str(src))
    fetched = []

    def fetch(sha):
        fetched.append(sha)
        return pkg.data

    session = tmp_path / "session"
    private.make_dir(str(session))
    spec = node_cache.prepare({"working_dir": pkg.sha}, str(session), fetch, lambda line: None)
    assert spec["error"] is None and fetched == [pkg.sha]
    assert _tree(spec["cwd"]) == ["logs/a.log", "main.py", "pkg/mod.py"]
    again = node_cache.prepare({"working_dir": pkg.sha, "setup_hook": "m.f"}, str(session),
                               fetch, lambda line: None)
    assert again["cwd"] == spec["cwd"] and fetched == [pkg.sha]   # cached on this node
    key = validate.env_key({"working_dir": pkg.sha})
    assert node_cache.load_spec(str(session), key)["cwd"] == spec["cwd"]
    for sub in ("runtime_resources", "runtime_resources/pkgs", "runtime_resources/envs"):
        assert stat.S_IMODE(os.stat(session / sub).st_mode) == 0o700
    other = packing.pack(str(src / "pkg"))
    bad = node_cache.prepare({"working_dir": other.sha}, str(session), lambda sha: pkg.data,
                             lambda line: None)
    assert "other contents than its hash" in bad["error"]
    missing = node_cache.prepare({"working_dir": "cd" * 32}, str(session), lambda sha: None,
                                 lambda line: None)
    assert "not in the cluster's store" in missing["error"]


def test_a_planted_link_in_the_cache_is_refused(src, tmp_path):
    pkg = packing.pack(str(src))
    session = tmp_path / "session"
    private.make_dir(str(session))
    node_cache.prepare({}, str(session), lambda sha: None, lambda line: None)  # makes the dirs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, session / "runtime_resources" / "pkgs" / pkg.sha)
    spec = node_cache.prepare({"working_dir": pkg.sha}, str(session), lambda sha: pkg.data,
                              lambda line: None)
    assert "symbolic link" in spec["error"] and os.listdir(elsewhere) == []
    with pytest.raises(RuntimeEnvSetupError, match="not a runtime_env key"):
        node_cache.load_spec(str(session), "../../etc")


def test_the_scheduler_never_gives_a_worker_of_one_env_to_another():
    ids = iter(range(100))
    s = sch.NodeScheduler({"CPU": 4}, lambda: b"L%d" % next(ids))
    assert s.request_lease("o", 1, {"CPU": 1}, "f", env="envA") == [sch.Spawn(1, "envA")]
    s.worker_registered(b"plain")                     # a warm plain worker: not for envA
    out = s.worker_registered(b"a1", "envA")
    assert [type(x) for x in out] == [sch.Grant] and out[0].worker_id == b"a1"
    out = s.request_lease("o", 2, {"CPU": 1}, "g")
    assert out[0].worker_id == b"plain"
    s.return_lease(out[0].lease_id)
    [grant] = [x for x in s.return_lease(s.workers[b"a1"]) if type(x) is sch.Grant] or [None]
    assert grant is None and s.envs.of == {b"a1": "envA"}
    out = s.request_lease("o", 3, {"CPU": 1}, "h", env="envB")  # envA's idle worker is ended
    assert sch.Spawn(1, "envB") in out and sch.Kill(b"a1") in out
    assert b"plain" in s.idle and b"a1" not in s.workers
    assert s.envs.starting == {"envB": 1}
    assert s.worker_failed_to_start("envB") == [sch.Spawn(1, "envB")]  # it still waits: again
    assert s.envs.starting == {"envB": 1} and s.starting == 1
    out = s.worker_registered(b"b1", "envB")
    assert out[0].worker_id == b"b1" and s.envs.starting == {} and s.starting == 0


def test_an_idle_worker_of_an_env_is_reaped_like_any_other():
    s = sch.NodeScheduler({"CPU": 1}, lambda: b"L")
    s.worker_registered(b"plain")
    s.worker_started(1, "envA")
    s.worker_registered(b"a1", "envA")
    assert s.reap_idle(0.0, 1, 1.0) == []          # the first tick that sees them
    assert s.reap_idle(2.0, 1, 1.0) == [sch.Kill(b"plain")]   # the longest idle first
    assert s.envs.of == {b"a1": "envA"} and list(s.idle) == [b"a1"]
    assert s.reap_idle(4.0, 0, 1.0) == [sch.Kill(b"a1")] and s.envs.of == {}


def test_a_venv_python_that_cannot_start_becomes_the_workers_error(tmp_path):
    from raylite._runtime_env.worker import WorkerEnv, exec_worker

    spec = {"env": {}, "cwd": None, "paths": [], "python": str(tmp_path / "bin" / "python"),
            "error": None}
    fds = len(os.listdir("/proc/self/fd"))
    exec_worker(spec["python"], {"token": "not here"}, spec)   # returns: nothing to execute
    assert "could not be started" in spec["error"] and len(os.listdir("/proc/self/fd")) == fds
    with pytest.raises(RuntimeEnvSetupError, match="could not be started"):
        WorkerEnv(spec).ready()


def test_the_ray_runtime_is_given_the_runtime_env_as_the_user_gave_it():
    from raylite import _options
    from raylite._runtime.ray_runtime import _TASK_DEFAULTS, _ray_options

    env = {"conda": "myenv", "pip": ["x"], "working_dir": "."}
    opts = _options.TaskOptions(runtime_env=_options.validate_runtime_env(env))
    assert _ray_options(opts, _TASK_DEFAULTS)["runtime_env"] == {**env, "env_vars": {}}
