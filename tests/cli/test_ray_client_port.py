"""ray://HOST:PORT addresses: a head started by `raylite start --head` also listens on Ray's
client port (--ray-client-server-port, default 10001), and a driver given ray://HOST:PORT
(init(address=...), RAYLITE_ADDRESS or RAY_ADDRESS) joins the cluster there.

Heads here take port 0 for both ports (the machine may run other heads on 6380 and 10001);
each temp dir is stopped with `raylite stop --force` at the end (the `temps` fixture).
"""
import functools
import glob
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import raylite
from raylite.cli import start as cli_start
from test_cli import raylite as _cli, temps  # noqa: F401 (a fixture: stops every temp dir)


raylite_cli = functools.partial(_cli, timeout=60)  # test_cli's runner of `python -m raylite`


def _node_json(temp):
    (path,) = glob.glob(str(temp / "session_*" / "node.json"))
    with open(path) as f:
        return json.load(f)


def _driver(temp, code, env=None):
    env = dict(os.environ, RAYLITE_TEMP_DIR=str(temp), **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=60)


def _taken_port(sock):
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock.getsockname()[1]


def test_a_driver_joins_at_ray_address_on_the_client_port(temps):
    temp = temps()
    out = raylite_cli("start", "--head", "--port", "0", "--ray-client-server-port", "0",
                      "--num-cpus", "1", temp=temp)
    node = _node_json(temp)
    client = node["client_address"]
    assert client.startswith("127.0.0.1:") and client != node["address"]  # loopback, its own port
    assert f'raylite.init(address="ray://{client}")' in out.stdout
    code = """
        import os, raylite
        raylite.init(address=os.environ.get("ADDR"))
        @raylite.remote
        def plus(x):
            return x + 1
        print(raylite.get(plus.remote(1)), raylite.cluster_resources()["CPU"])
    """
    for env in ({"ADDR": f"ray://{client}"}, {"RAYLITE_ADDRESS": f"ray://{client}"},
                {"RAY_ADDRESS": f"ray://{client}"}):
        got = _driver(temp, code, env)
        assert got.returncode == 0 and got.stdout.split() == ["2", "1.0"], got.stderr
    status = raylite_cli("status", temp=temp).stdout
    assert "nodes (1 alive)" in status  # one daemon: the client port is a door, not a node


def test_the_cli_takes_ray_addresses_as_init_does(temps):
    temp = temps()
    raylite_cli("start", "--head", "--port", "0", "--ray-client-server-port", "0",
                "--num-cpus", "1", temp=temp)
    client = _node_json(temp)["client_address"]
    assert "nodes (1 alive)" in raylite_cli("status", "--address", f"ray://{client}",
                                            temp=temp).stdout
    nodes = json.loads(raylite_cli("list", "nodes", "--address", f"ray://{client}", "--format",
                                   "json", temp=temp).stdout)
    assert len(nodes) == 1
    raylite_cli("job", "list", "--address", f"ray://{client}", temp=temp)  # none yet: exits 0
    bad = raylite_cli("status", "--address", "ray://nohost", temp=temp, check=False)
    assert bad.returncode == 2 and "Bad address 'ray://nohost'" in bad.stderr


def test_ray_address_with_nothing_listening_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # nobody listens: bound, never listen()ed
        with pytest.raises(ConnectionError, match=f"Nothing listens at 127.0.0.1:{free}") as e:
            raylite.init(address=f"ray://127.0.0.1:{free}", _temp_dir=str(tmp_path / "t"))
    assert "raylite start --head" in str(e.value)
    assert not raylite.is_initialized()
    with pytest.raises(ValueError, match="ray://host:port"):
        raylite.init(address="ray://nohost")


def test_an_explicit_client_port_in_use_fails_the_start(temps):
    temp = temps()
    with socket.socket() as busy:
        port = _taken_port(busy)
        out = raylite_cli("start", "--head", "--port", "0", "--ray-client-server-port", str(port),
                          temp=temp, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"Ray's client port 127.0.0.1:{port}" in out.stderr
    assert "--ray-client-server-port" in out.stderr
    assert not (temp / "raylite_current_cluster").exists()
    assert not glob.glob(str(temp / "session_*"))


def test_the_default_client_port_when_taken_is_skipped_with_a_warning(tmp_path):
    """`raylite start --head` asks for 10001 without --client-port-required: the daemon starts
    without it and says why (checked on the daemon with a port taken here, since 10001 may be
    anyone's on this machine)."""
    assert cli_start.RAY_CLIENT_PORT == 10001
    temp = tmp_path / "t"
    with socket.socket() as busy:
        port = _taken_port(busy)
        proc = subprocess.Popen([sys.executable, "-m", "raylite._node.main", "--record",
                                 "--temp-dir", str(temp), "--port", "0", "--num-cpus", "1",
                                 "--client-port", str(port)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline()
            assert line.startswith("READY "), line + proc.stderr.read()
            node = _node_json(temp)
            assert "client_address" not in node
            assert f"Ray's client port 127.0.0.1:{port}" in node["client_error"]
        finally:
            raylite_cli("stop", temp=temp, check=False)
            proc.wait(timeout=30)
            proc.stdout.close()
            assert "ray:// addresses will not reach this cluster" in proc.stderr.read()
            proc.stderr.close()


def test_the_daemon_command_asks_for_the_client_port_only_on_a_head():
    args = cli_start.argparse.Namespace(head=True, address=None, host="127.0.0.1", port=0,
                                        block=False, num_cpus=None, num_gpus=None,
                                        object_store_memory=None, resources=None,
                                        ray_client_server_port=None, node_ip_address=None,
                                        labels=None)
    cmd = cli_start._daemon_cmd(args, "/t", "/t/log")
    assert cmd[cmd.index("--client-port") + 1] == "10001" and "--client-port-required" not in cmd
    args.ray_client_server_port = 12345
    cmd = cli_start._daemon_cmd(args, "/t", "/t/log")
    assert cmd[cmd.index("--client-port") + 1] == "12345" and "--client-port-required" in cmd
    args.head, args.address, args.ray_client_server_port = False, "127.0.0.1:1", None
    assert "--client-port" not in cli_start._daemon_cmd(args, "/t", "/t/log")


@pytest.mark.parametrize("flags, text", [
    (["--address", "127.0.0.1:1", "--ray-client-server-port", "10001"], "goes with --head"),
    (["--head", "--ray-client-server-port", "70000"], "must be 0..65535"),
])
def test_bad_client_port_flags_exit_2(temps, flags, text):
    temp = temps()
    out = raylite_cli("start", *flags, temp=temp, check=False)
    assert out.returncode == 2 and text in out.stderr, out.stderr


def test_a_cluster_started_by_init_opens_no_client_port(tmp_path):
    ctx = raylite.init(num_cpus=1, _temp_dir=str(tmp_path / "t"))
    try:
        with open(os.path.join(ctx.session_dir, "node.json")) as f:
            node = json.load(f)
        assert "client_address" not in node and "client_error" not in node
    finally:
        raylite.shutdown()
