"""Ray's client port is one more door of the head's daemon, with the same lock: another
user (nobody) who reaches it without the token gets refused before a byte is unpickled,
and cannot read the token that lets this user's drivers in."""
import glob
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from raylite._protocol import transport

# nobody dials the client port, answers the greeting with a guessed proof, then sends a
# frame holding a pickle that creates the canary file if the daemon ever loaded it.
INTRUDER = textwrap.dedent("""
    import glob, os, socket, sys
    host, port, evil, temp = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4]
    s = socket.create_connection((host, port), timeout=10)
    greeting = s.recv(64)
    s.sendall(greeting[-16:] + b"g" + os.urandom(32))
    s.sendall(len(evil).to_bytes(4, "big") + evil)
    try:
        answer = s.recv(64)
    except OSError:
        answer = b""
    print("ANSWER", answer[:2].hex() or "closed")
    try:
        print("TOKEN", open(glob.glob(temp + "/session_*/token")[0]).read())
    except (OSError, IndexError) as e:
        print("NO TOKEN", type(e).__name__)
""")


@pytest.fixture
def evil_pickle(request):
    here = pathlib.Path(__file__).with_name("conftest.py")
    return request.config.pluginmanager.get_plugin(str(here)).evil_pickle


@pytest.fixture
def head(tmp_path):
    temp = tmp_path / "raylite"
    cli = [sys.executable, "-m", "raylite"]
    out = subprocess.run(cli + ["start", "--head", "--port", "0", "--ray-client-server-port", "0",
                                "--num-cpus", "1", "--temp-dir", str(temp)],
                         capture_output=True, text=True, timeout=60)
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        (node,) = glob.glob(str(temp / "session_*" / "node.json"))
        with open(node) as f:
            yield temp, json.load(f)["client_address"]
    finally:
        subprocess.run(cli + ["stop", "--force", "--temp-dir", str(temp)], capture_output=True,
                       timeout=60)


def test_nobody_without_the_token_is_refused_at_the_client_port(head, attacker, evil_pickle,
                                                                 tmp_path):
    temp, client = head
    canary = tmp_path / "canary"
    host, _, port = client.rpartition(":")
    out = attacker("import sys; sys.argv[1:] = %r\n%s" % (
        [host, port, evil_pickle(canary).hex(), str(temp)], INTRUDER))
    assert "ANSWER 4e4f" in out.stdout or "ANSWER closed" in out.stdout, out.stdout  # "NO"
    assert "NO TOKEN" in out.stdout, out.stdout
    assert not canary.exists(), "the head unpickled an unauthenticated client's bytes"
    with pytest.raises(transport.AuthenticationError):
        transport.connect(client, os.urandom(32), timeout=10).close()
    driver = subprocess.run(
        [sys.executable, "-c", "import raylite; raylite.init(address=%r); "
         "print(raylite.get(raylite.put(7)))" % f"ray://{client}"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, RAYLITE_TEMP_DIR=str(temp)))
    assert driver.returncode == 0 and driver.stdout.split() == ["7"], driver.stderr
