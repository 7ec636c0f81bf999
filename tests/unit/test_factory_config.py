import os

import pytest

from raylite import _config
from raylite._private_files import NotPrivateError
from raylite._runtime import factory


def none():
    return None


def found():
    return "10.0.0.1:6380"


def test_resolve_rules():
    assert factory.resolve(True, "1.2.3.4:5", None, found) == ("local", None)
    assert factory.resolve(False, None, None, none) == ("start", None)
    assert factory.resolve(False, None, None, found) == ("connect", "10.0.0.1:6380")
    assert factory.resolve(False, "local", None, found) == ("start", None)
    assert factory.resolve(False, "auto", None, found) == ("connect", "10.0.0.1:6380")
    assert factory.resolve(False, "h:1", None, none) == ("connect", "h:1")
    assert factory.resolve(False, None, "env:2", none) == ("connect", "env:2")
    assert factory.resolve(False, "arg:3", "env:2", none) == ("connect", "arg:3")
    assert factory.resolve(False, "ray://h:10001", None, found) == ("connect", "h:10001")
    assert factory.resolve(False, None, "ray://env:4", none) == ("connect", "env:4")


def test_resolve_errors():
    with pytest.raises(ConnectionError, match="raylite start"):
        factory.resolve(False, "auto", None, none)
    with pytest.raises(ValueError, match="host:port"):
        factory.resolve(False, "nohost", None, none)
    for bad in ("raylite://x:1", "ray://x", "ray://", "http://x:1"):
        with pytest.raises(ValueError, match="ray://host:port"):
            factory.resolve(False, bad, None, none)
    with pytest.raises(TypeError):
        factory.resolve(False, 5, None, none)


def test_recorded_address(tmp_path):
    assert factory.recorded_address(str(tmp_path)) is None
    import os
    (tmp_path / "raylite_current_cluster").write_text(f"127.0.0.1:9 {os.getpid()} /x\n")
    assert factory.recorded_address(str(tmp_path)) == "127.0.0.1:9"
    (tmp_path / "raylite_current_cluster").write_text("127.0.0.1:9 999999999 /x\n")
    assert factory.recorded_address(str(tmp_path)) is None
    os.chmod(tmp_path, 0o755)  # another user could list it: its records are not trusted
    with pytest.raises(NotPrivateError, match=f"{tmp_path}: it has mode 0755"):
        factory.recorded_address(str(tmp_path))
    assert factory.recorded_address(str(tmp_path / "missing")) is None


def test_registry_is_by_name():
    assert {"local", "cluster"} <= set(factory.runtime_names())
    made = []
    factory.register("fake", lambda req: made.append(req) or "rt")
    try:
        assert "fake" in factory.runtime_names()
    finally:
        factory._REGISTRY.pop("fake")


def test_config_from_env():
    c = _config.from_env({})
    assert c.address is None and c.auto_init and not c.local_mode
    assert c.temp_dir == f"/tmp/raylite_{os.geteuid()}"  # each user their own
    c = _config.from_env({"RAYLITE_ADDRESS": "h:1", "RAYLITE_AUTO_INIT": "0",
                          "RAYLITE_LOCAL_MODE": "yes", "RAYLITE_TEMP_DIR": "/t"})
    assert (c.address, c.auto_init, c.local_mode, c.temp_dir) == ("h:1", False, True, "/t")
    with pytest.raises(ValueError, match="RAYLITE"):
        _config.from_env({"RAYLITE_AUTO_INIT": "maybe"})


def test_ray_address_and_namespace_are_read_when_raylites_are_unset():
    c = _config.from_env({"RAY_ADDRESS": "ray:1", "RAY_NAMESPACE": "rns"})
    assert (c.address, c.namespace) == ("ray:1", "rns")
    c = _config.from_env({"RAY_ADDRESS": "ray:1", "RAYLITE_ADDRESS": "lite:2",
                          "RAY_NAMESPACE": "rns", "RAYLITE_NAMESPACE": "lns"})
    assert (c.address, c.namespace) == ("lite:2", "lns")
    assert _config.from_env({}).namespace is None


@pytest.mark.parametrize("address", ["host:", ":80", "host:port", "raylite://h:1", "", "h:1:x"])
def test_resolve_rejects_bad_addresses(address):
    with pytest.raises(ValueError):
        factory.resolve(False, address, None, found)


def test_resolve_env_auto_and_local():
    assert factory.resolve(False, None, "local", found) == ("start", None)
    assert factory.resolve(False, None, "auto", found) == ("connect", "10.0.0.1:6380")
    with pytest.raises(ConnectionError):
        factory.resolve(False, None, "auto", none)


def test_create_builds_the_runtime_registered_by_name():
    made = []
    saved = dict(factory._REGISTRY)
    try:
        factory.register("local", lambda req: made.append(("local", req.mode)) or "L")
        factory.register("cluster", lambda req: made.append(("cluster", req.mode)) or "C")
        assert factory.create("local", factory.InitRequest(mode="local")) == "L"
        assert factory.create("cluster", factory.InitRequest(mode="start")) == "C"
        assert factory.create("cluster", factory.InitRequest(mode="connect", address="h:1")) == "C"
        assert made == [("local", "local"), ("cluster", "start"), ("cluster", "connect")]
        del factory._REGISTRY["cluster"]
        with pytest.raises(ValueError, match="'cluster' names no registered runtime"):
            factory.create("cluster", factory.InitRequest(mode="start"))
    finally:
        factory._REGISTRY.clear()
        factory._REGISTRY.update(saved)


def test_choose_picks_a_registered_runtime_by_name():
    assert factory.choose(True, None) == "local"
    assert factory.choose(True, "nope") == "local"  # local_mode=True wins over the variable
    assert factory.choose(False, None) == "cluster"
    assert factory.choose(False, "local") == "local"
    with pytest.raises(ValueError) as e:
        factory.choose(False, "nope")
    text = str(e.value)  # the bad name, what is registered, and how to register one
    assert "RAYLITE_RUNTIME='nope'" in text and "cluster, local" in text and "register(" in text


def test_init_selects_a_registered_runtime_by_name(monkeypatch, tmp_path):
    import raylite
    from raylite._runtime.local import LocalRuntime

    class Fake(LocalRuntime):
        puts = 0

        def put(self, value):
            Fake.puts += 1
            return super().put(value)

    made = []
    factory.register("fake", lambda req: made.append(req) or Fake(req))
    monkeypatch.setenv("RAYLITE_RUNTIME", "fake")
    try:
        raylite.init(num_cpus=1, _temp_dir=str(tmp_path))
        assert raylite.get(raylite.put(7)) == 7 and Fake.puts == 1  # the calls reach it
        assert [(r.mode, r.num_cpus, r.temp_dir) for r in made] == [("start", 1, str(tmp_path))]
    finally:
        raylite.shutdown()
        factory._REGISTRY.pop("fake")
    with pytest.raises(ValueError, match="RAYLITE_RUNTIME='fake' names no registered runtime"):
        raylite.init(num_cpus=1, _temp_dir=str(tmp_path))  # unregistered: refused, not guessed
    assert not raylite.is_initialized()


def test_config_flags_and_defaults():
    assert _config.from_env({"RAYLITE_AUTO_INIT": ""}).auto_init  # empty means default
    assert not _config.from_env({"RAYLITE_LOG_TO_DRIVER": "off"}).log_to_driver
    assert _config.from_env({"RAYLITE_LOCAL_MODE": " TRUE "}).local_mode
    assert _config.from_env({"RAYLITE_ADDRESS": ""}).address is None
    with pytest.raises(ValueError, match="RAYLITE"):
        _config.from_env({"RAYLITE_LOCAL_MODE": "2"})
    assert _config.from_env({}).runtime is None
    assert _config.from_env({"RAYLITE_RUNTIME": " fake "}).runtime == "fake"


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "soon"])
def test_the_health_check_timeout_is_seconds_above_zero(bad):
    assert _config.from_env({}).health_check_timeout_s == 10.0
    assert _config.from_env({"RAYLITE_HEALTH_CHECK_TIMEOUT_S": "0.5"}).health_check_timeout_s == 0.5
    with pytest.raises(ValueError, match="RAYLITE_HEALTH_CHECK_TIMEOUT_S=.* must be a number of "
                                         "seconds > 0"):
        _config.from_env({"RAYLITE_HEALTH_CHECK_TIMEOUT_S": bad})


def test_a_node_here_that_joined_a_head_elsewhere_is_where_drivers_join(tmp_path):
    import os

    from raylite import _private_files as private
    from raylite._runtime import factory

    temp = tmp_path / "t"
    private.make_dir(str(temp))
    private.make_dir(str(temp / "raylite_nodes"))
    me = os.getpid()
    # a node of a head on another machine, and one of a head on this machine (cluster_utils)
    private.write_text(str(temp / "raylite_nodes" / "1"), f"198.18.0.2:7 {me} /s 198.18.0.9:6380\n")
    private.write_text(str(temp / "raylite_nodes" / "2"), f"127.0.0.1:8 {me} /s 127.0.0.1:6380\n")
    assert factory.joined_node(str(temp)) == "198.18.0.2:7"
    assert factory.joined_node(str(temp), "127.0.0.1:6380") == "127.0.0.1:8"
    assert factory.through_local_node("198.18.0.9:6380", str(temp)) == "198.18.0.2:7"
    assert factory.through_local_node("198.18.0.8:6380", str(temp)) == "198.18.0.8:6380"
    assert factory.through_local_node("127.0.0.1:6380", str(temp)) == "127.0.0.1:6380"
    os.unlink(temp / "raylite_nodes" / "1")
    assert factory.joined_node(str(temp)) is None
