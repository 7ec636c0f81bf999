"""Another user squats raylite's temp dir: plants a record, a session and a token that
point at their own server. init() and the raylite command must refuse, naming the path,
and never connect there.

The attacker works in a sticky world-writable dir (as /tmp is); the victim's temp dir
is a path in it, as the default /tmp/raylite_<uid> is in /tmp.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

from raylite import _config
from raylite import _private_files as private

NOBODY = 65534

# The attacker: makes the victim's temp dir (mode 0700, but theirs) with a record, a
# session and a token naming a server it runs, and notes every connection to it.
SQUAT = textwrap.dedent("""
    import json, os, socket, sys
    temp, seen = sys.argv[1], sys.argv[2]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    address = "127.0.0.1:%d" % srv.getsockname()[1]
    session = os.path.join(temp, "session_2000-01-01_00-00-00_%d" % os.getpid())
    os.makedirs(session, mode=0o700)
    for path, text in ((os.path.join(temp, "raylite_current_cluster"),
                        "%s %d %s\\n" % (address, os.getpid(), session)),
                       (os.path.join(session, "node.json"),
                        json.dumps({"address": address, "pid": os.getpid(), "node_id": "ab" * 16})),
                       (os.path.join(session, "token"), "ab" * 32)):
        with open(path, "w") as f:
            f.write(text)
    os.chmod(temp, 0o700)
    print(address, flush=True)
    while True:
        conn, _ = srv.accept()
        with open(seen, "a") as f:
            f.write("connected\\n")
        conn.close()
""")


@pytest.fixture
def shared():
    """A dir like /tmp: anyone may create in it, only owners may remove (in /tmp: the
    attacker cannot reach pytest's tmp_path)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="raylite_shared_"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d)


def _squat(attacker_spawn, shared, name="raylite_0"):
    temp, seen = shared / name, shared / "seen"
    proc = attacker_spawn(f"import sys; sys.argv[1:] = {[str(temp), str(seen)]!r}\n" + SQUAT)
    address = proc.stdout.readline().strip()
    assert address, proc.stderr.read()
    return temp, seen


def _driver(temp):
    return subprocess.run([sys.executable, "-c", "import raylite; raylite.init()"],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))


def _cli(*args, temp):
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", str(temp)],
                          capture_output=True, text=True, timeout=60)


def test_init_and_status_refuse_a_temp_dir_another_user_made(shared, attacker_spawn):
    temp, seen = _squat(attacker_spawn, shared)
    assert os.stat(temp).st_uid == NOBODY
    out = _driver(temp)
    assert out.returncode != 0
    assert f"raylite will not use {temp}: it belongs to uid {NOBODY}" in out.stderr, out.stderr
    assert "--temp-dir or RAYLITE_TEMP_DIR" in out.stderr
    out = _cli("status", temp=temp)
    assert out.returncode == 1 and f"raylite status: raylite will not use {temp}" in out.stderr, \
        out.stdout + out.stderr
    out = _cli("status", "--address", "127.0.0.1:1", temp=temp)  # its token is read there too
    assert out.returncode == 1 and f"raylite will not use {temp}" in out.stderr
    out = _cli("stop", temp=temp)
    assert out.returncode == 1 and f"raylite will not use {temp}" in out.stderr
    assert os.path.exists(temp / "raylite_current_cluster")  # nobody's files are left alone
    assert not seen.exists()  # nothing ever connected to the attacker's server


def test_a_temp_dir_of_ours_open_to_others_is_refused(tmp_path):
    temp = tmp_path / "t"
    temp.mkdir()
    os.chmod(temp, 0o777)  # anyone could have planted what is in it
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.setblocking(False)
    address = "127.0.0.1:%d" % srv.getsockname()[1]
    session = temp / f"session_2000-01-01_00-00-00_{os.getpid()}"
    session.mkdir(mode=0o700)
    (temp / "raylite_current_cluster").write_text(f"{address} {os.getpid()} {session}\n")
    (session / "node.json").write_text(json.dumps({"address": address, "pid": os.getpid()}))
    (session / "token").write_text("ab" * 32)
    try:
        out = _driver(temp)
        assert out.returncode != 0
        assert f"raylite will not use {temp}: it has mode 0777" in out.stderr, out.stderr
        assert f"chmod 700 {temp}" in out.stderr
        out = _cli("status", temp=temp)
        assert out.returncode == 1 and "has mode 0777" in out.stderr
        out = _cli("start", "--head", "--port", "0", temp=temp)
        assert out.returncode == 1 and "has mode 0777" in out.stderr, out.stdout + out.stderr
        with pytest.raises(BlockingIOError):
            srv.accept()  # nobody connected
    finally:
        srv.close()
        os.chmod(temp, 0o700)
        _cli("stop", "--force", temp=temp)  # (had a head started, this stops it)


def test_the_default_temp_dir_is_per_user():
    assert _config.from_env({}).temp_dir == f"/tmp/raylite_{os.geteuid()}"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_every_path_is_checked_for_owner_mode_and_links(tmp_path):
    d = tmp_path / "d"
    private.make_dir(str(d))
    assert os.stat(d).st_mode & 0o777 == 0o700
    f = d / "f"
    private.write_text(str(f), "x")
    assert private.read_text(str(f)) == "x" and os.stat(f).st_mode & 0o777 == 0o600
    assert private.read_text(str(d / "missing")) is None and not private.check_dir(str(d / "no"))

    os.chown(f, NOBODY, NOBODY)
    with pytest.raises(private.NotPrivateError, match=f"{f}: it belongs to uid {NOBODY}"):
        private.read_text(str(f))
    os.chown(f, 0, 0)
    os.chmod(f, 0o644)
    assert private.read_text(str(f)) == "x"  # readable by others is fine for a record...
    with pytest.raises(private.NotPrivateError, match="mode 0644"):
        private.read_text(str(f), secret=True)  # ...not for a token
    os.chmod(f, 0o664)
    with pytest.raises(private.NotPrivateError, match="mode 0664"):
        private.read_text(str(f))
    link = d / "link"
    link.symlink_to(f)
    with pytest.raises(private.NotPrivateError, match="symbolic link"):
        private.read_text(str(link))
    private.write_text(str(link), "y")  # replaces the link, never writes through it
    assert not link.is_symlink() and f.read_text() == "x"
    dlink = tmp_path / "dlink"
    dlink.symlink_to(d)
    with pytest.raises(private.NotPrivateError, match="symbolic link"):
        private.make_dir(str(dlink))
    with pytest.raises(private.NotPrivateError, match="not a directory"):
        private.check_dir(str(f))
    os.chown(d, NOBODY, NOBODY)
    with pytest.raises(private.NotPrivateError, match=f"{d}: it belongs to uid {NOBODY}"):
        private.make_dir(str(d))


def test_a_dir_we_make_is_0700_whatever_the_umask(tmp_path):
    old = os.umask(0o777)
    try:
        private.make_dir(str(tmp_path / "a"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o700
