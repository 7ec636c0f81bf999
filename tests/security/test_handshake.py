"""Issue 11, items 2 and 5: nobody else gets in, and nobody wedges the door.

Item 2: a client must not trust a server that has not proven it knows the cluster token.
Another user (nobody) runs a fake server, over TCP or squatting the abstract Unix socket
name of a free port, whose reply is a pickle that creates a canary file when loaded;
`init(address=...)` and `raylite status --address` must refuse it and never load it, and
a head must still start on a port whose Unix socket name another user squats.

Item 5: unauthenticated connections that say nothing (or one byte every few seconds) must
not keep a new driver out of the head, nor the owner of a task out of a worker.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import raylite
from raylite import _runtime
from raylite._protocol import transport

DRIVER_TIMEOUT = 60.0  # a bound on a hang, not on speed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A fake raylite server, run as nobody. It greets with the client's own MAGIC, reads the
# client's answer, and answers "OK" (with a guessed proof when the client expects one)
# followed by a frame holding the evil pickle.
FAKE_SERVER = textwrap.dedent("""
    import os, socket, sys, threading, time
    kind, where, magic, evil = sys.argv[1:5]
    magic, evil = bytes.fromhex(magic), bytes.fromhex(evil)
    if kind == "tcp":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(where)))
    else:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(bytes.fromhex(where).decode())
    srv.listen(16)
    print("READY", flush=True)
    def serve(c):
        try:
            c.settimeout(5)
            c.sendall(magic + os.urandom(16))
            answer = c.recv(1024)
            frame = len(evil).to_bytes(4, "big") + evil
            c.sendall(b"OK" + (frame if len(answer) == 32 else os.urandom(32) + frame))
            time.sleep(5)
        except OSError:
            pass
        finally:
            c.close()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")


@pytest.fixture
def evil_pickle(request):
    """conftest.evil_pickle (a helper, not a fixture, in this directory's conftest)."""
    here = pathlib.Path(__file__).with_name("conftest.py")
    return request.config.pluginmanager.get_plugin(str(here)).evil_pickle


@pytest.fixture(params=["tcp", "squatted-unix"])
def fake_server(request, attacker_spawn, tmp_path, evil_pickle):
    """(address, canary path) of a fake server run by nobody."""
    canary = tmp_path / "canary"
    port = _free_port()
    address = f"127.0.0.1:{port}"
    where = str(port) if request.param == "tcp" else transport.unix_path(address).encode().hex()
    proc = attacker_spawn("import sys; sys.argv[1:] = %r\n%s" % (
        ["tcp" if request.param == "tcp" else "unix", where, transport.MAGIC.hex(),
         evil_pickle(canary).hex()], FAKE_SERVER))
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
    return address, canary


def _run(args, tmp_path, token=None, timeout=DRIVER_TIMEOUT):
    env = dict(os.environ, RAYLITE_TEMP_DIR=str(tmp_path / "raylite"))
    if token is not None:
        env["RAYLITE_CLUSTER_TOKEN"] = token
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def test_init_refuses_a_server_that_cannot_prove_the_token(fake_server, tmp_path):
    address, canary = fake_server
    out = _run([sys.executable, "-c", f"import raylite; raylite.init(address={address!r})"],
               tmp_path, token=os.urandom(32).hex())
    assert out.returncode != 0
    assert not canary.exists(), "the driver unpickled the fake server's reply"
    assert "ConnectionError" in out.stderr or "AuthenticationError" in out.stderr, out.stderr


def test_status_refuses_a_server_that_cannot_prove_the_token(fake_server, tmp_path):
    address, canary = fake_server
    out = _run([sys.executable, "-m", "raylite", "status", "--address", address,
                "--temp-dir", str(tmp_path / "raylite")], tmp_path, token=os.urandom(32).hex())
    assert out.returncode == 1, out.stdout + out.stderr
    assert not canary.exists(), "raylite status unpickled the fake server's reply"
    assert "raylite status:" in out.stderr


def test_a_head_starts_on_a_port_whose_unix_name_another_user_squats(attacker_spawn, tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    squat = attacker_spawn(textwrap.dedent(f"""
        import socket, time
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind({transport.unix_path(address)!r})
        s.listen(0)  # and never accepts: its backlog is soon full
        print("READY", flush=True)
        time.sleep(120)
    """))
    assert squat.stdout.readline().strip() == "READY", squat.stderr.read()
    temp = str(tmp_path / "raylite")
    cli = [sys.executable, "-m", "raylite"]
    try:
        out = _run(cli + ["start", "--head", "--port", str(port), "--num-cpus", "1",
                          "--temp-dir", temp], tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        out = _run(cli + ["status", "--address", address, "--temp-dir", temp], tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        driver = textwrap.dedent(f"""
            import raylite
            raylite.init(address={address!r})
            @raylite.remote
            def f(x):
                return x + 1
            print(raylite.get(f.remote(41)))
        """)
        out = _run([sys.executable, "-c", driver], tmp_path)
        assert out.returncode == 0 and out.stdout.split() == ["42"], out.stdout + out.stderr
    finally:
        _run(cli + ["stop", "--force", "--temp-dir", temp], tmp_path)


# Holds idle unauthenticated connections open as nobody, over TCP and the Unix socket, to
# every address given, reopening any the server closes; one TCP connection per address sends
# a byte every 2 s instead. Prints READY once all are open.
SLOWLORIS = textwrap.dedent("""
    import socket, sys, threading, time
    n, targets = int(sys.argv[1]), sys.argv[2:]
    def opener(target):
        kind, where = target.split("=", 1)
        if kind == "tcp":
            host, port = where.rsplit(":", 1)
            return lambda: socket.create_connection((host, int(port)), timeout=5)
        path = bytes.fromhex(where).decode()
        def open_unix():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(path)
            return s
        return open_unix
    slots = [[opener(t), None] for t in targets for _ in range(n)]
    def keep_open():
        for slot in slots:
            s = slot[1]
            if s is not None:
                try:
                    s.setblocking(False)
                    if s.recv(4096, socket.MSG_PEEK) != b"":
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                s.close()
            try:
                slot[1] = slot[0]()
            except OSError:
                slot[1] = None
    def trickle(target):
        while True:
            try:
                s = opener(target)()
                while True:
                    s.send(b"x")
                    time.sleep(2)
            except OSError:
                time.sleep(0.2)
    keep_open()
    for t in targets:
        if t.startswith("tcp="):
            threading.Thread(target=trickle, args=(t,), daemon=True).start()
    print("READY", flush=True)
    while True:
        time.sleep(0.5)
        keep_open()
""")


def _slowloris(attacker_spawn, addresses, n=100):
    targets = [f"tcp={a}" for a in addresses] + \
              [f"unix={transport.unix_path(a).encode().hex()}" for a in addresses]
    proc = attacker_spawn("import sys; sys.argv[1:] = %r\n%s" % ([str(n), *targets], SLOWLORIS))
    assert proc.stdout.readline().strip() == "READY", proc.stderr.read()


def _driver_running_tasks(address: str, token: bytes, tmp_path) -> list[int]:
    """A new driver (a subprocess) that joins `address` and runs 20 tasks; their pids."""
    code = textwrap.dedent(f"""
        import os, raylite
        raylite.init(address={address!r})
        @raylite.remote
        def pid(i):
            return os.getpid()
        print(*raylite.get([pid.remote(i) for i in range(20)]))
    """)
    out = _run([sys.executable, "-c", code], tmp_path, token=token.hex())
    assert out.returncode == 0, out.stdout + out.stderr
    return [int(x) for x in out.stdout.split()]


@pytest.fixture
def head():
    raylite.init(num_cpus=2)
    yield _runtime.current()
    raylite.shutdown()


def test_idle_connections_do_not_keep_a_new_driver_out(head, attacker_spawn, tmp_path):
    _slowloris(attacker_spawn, [head.daemon_address])
    assert len(_driver_running_tasks(head.daemon_address, head._token, tmp_path)) == 20


def test_idle_connections_to_workers_do_not_keep_their_owners_out(head, attacker_spawn, tmp_path):
    @raylite.remote
    def where():
        import time
        time.sleep(0.5)
        return _runtime.current().address, os.getpid()

    workers = dict(raylite.get([where.remote() for _ in range(2)]))
    assert len(workers) == 2
    _slowloris(attacker_spawn, list(workers), n=50)
    pids = _driver_running_tasks(head.daemon_address, head._token, tmp_path)
    # A worker its owner could not reach in time would have been killed and replaced.
    assert set(pids) <= set(workers.values()), "a worker was replaced while its port was attacked"


def test_refused_handshakes_do_not_grow_the_heads_log_without_limit(tmp_path):
    """Issue 11, item 17: 200 refused handshakes from 50 addresses add a few lines, not 200."""
    import socket

    temp = str(tmp_path / "raylite")
    cli = [sys.executable, "-m", "raylite"]
    try:
        out = _run(cli + ["start", "--head", "--port", "0", "--num-cpus", "1", "--temp-dir", temp],
                   tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        address = out.stdout.split(" started at ")[1].split()[0]
        log_path = os.path.join(temp, "raylite_head.log")
        for i in range(200):
            s = socket.create_connection(transport.split_address(address), timeout=10,
                                         source_address=(f"127.0.0.{2 + i % 50}", 0))
            with s:
                s.recv(64)                      # the greeting
                s.sendall(os.urandom(49))       # a wrong answer
                try:
                    while s.recv(64):           # until the head hangs up on us
                        pass
                except ConnectionResetError:
                    pass
        with open(log_path) as f:
            refused = [line for line in f if "refused" in line]
        assert 1 <= len(refused) <= 11, "".join(refused[:20])
    finally:
        _run(cli + ["stop", "--force", "--temp-dir", temp], tmp_path)
