"""Another user cannot plant code in a node's runtime_env cache, nor make a worker read
a spec of theirs: the cache lives in the session dir (0700, ours), and a spec or package
dir that is a link or another user's is refused."""
import json
import os

import pytest

import raylite
from raylite import _private_files as private
from raylite._runtime_env import node_cache


def test_the_attacker_cannot_reach_the_cache_to_plant_a_module(attacker, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "rtenv_sec_mod.py").write_text("WHO = 'ours'\n")
    raylite.init(num_cpus=1, _temp_dir=str(tmp_path / "t"))
    try:
        @raylite.remote(runtime_env={"working_dir": str(wd)})
        def where():
            import rtenv_sec_mod

            return os.getcwd(), rtenv_sec_mod.WHO

        cwd, who = raylite.get(where.remote())
        assert who == "ours"
        target = os.path.join(cwd, "rtenv_sec_evil.py")
        out = attacker(f"""
import os
for path in ({target!r}, {os.path.join(os.path.dirname(cwd), "x")!r},
             {os.path.join(os.path.dirname(os.path.dirname(cwd)), "envs", "k.json")!r}):
    try:
        open(path, "w").write("planted")
        print("planted", path)
    except OSError as e:
        print("refused", type(e).__name__)
""")
        assert "planted" not in out.stdout and out.stdout.count("refused") == 3
        assert not os.path.exists(target)
        for d in (cwd, os.path.dirname(cwd), os.path.dirname(os.path.dirname(cwd))):
            assert os.stat(d).st_mode & 0o077 == 0 and os.stat(d).st_uid == os.geteuid()
    finally:
        raylite.shutdown()


def test_a_spec_that_is_not_ours_is_never_read(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root (CI runs as root)")
    session = tmp_path / "s"
    private.make_dir(str(session))
    node_cache.prepare({}, str(session), lambda sha: None, lambda line: None)
    spec = session / "runtime_resources" / "envs" / ("ab" * 16 + ".json")
    spec.write_text(json.dumps({"env": {}, "cwd": "/", "paths": ["/tmp/evil"], "python": None,
                                "error": None}))
    os.chown(spec, 65534, 65534)  # nobody's, as if they had put it there
    with pytest.raises(private.NotPrivateError, match="belongs to"):
        node_cache.load_spec(str(session), "ab" * 16)
    from raylite._runtime_env.worker import load

    assert "could not be loaded" in load(str(session), "ab" * 16)["error"]
