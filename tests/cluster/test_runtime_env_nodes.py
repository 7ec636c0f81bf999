"""A runtime_env's packages reach a node that joined later: content addressed in the GCS's
KV, fetched by the node that lacks them, cached in that node's own session dir."""
import os
import subprocess
import sys
import textwrap

import pytest


def _raylite(*args, temp):
    out = subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", str(temp)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture
def two_nodes(tmp_path):
    """(temp dir, head address, joined node address); both stopped at the end."""
    temp = tmp_path / "t"
    out = _raylite("start", "--head", "--port", "0", "--num-cpus", "1", temp=temp)
    address = out.stdout.split(" started at ")[1].split()[0]
    try:
        _raylite("start", "--address", address, "--num-cpus", "1", temp=temp)
        [record] = (temp / "raylite_nodes").glob("*")
        yield temp, address, record.read_text().split()[0]
    finally:
        subprocess.run([sys.executable, "-m", "raylite", "stop", "--force", "--temp-dir",
                        str(temp)], capture_output=True, timeout=60)


def _driver(temp, address, code):
    env = dict(os.environ, RAYLITE_TEMP_DIR=str(temp))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), address],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.split()


CODE = """
    import os, sys
    import raylite
    raylite.init(address=sys.argv[1], runtime_env={"working_dir": %r})

    @raylite.remote
    def where():
        return (open("data.txt").read().strip(), raylite.get_runtime_context().get_node_id(),
                os.getcwd())

    text, node, cwd = raylite.get(where.remote())
    print(text, node, cwd)
"""


def test_a_joined_node_fetches_the_working_dir_it_lacks(two_nodes, tmp_path):
    temp, head, node = two_nodes
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "data.txt").write_text("shipped\n")
    text, head_node, head_cwd = _driver(temp, head, CODE % str(wd))
    text2, joined_node, joined_cwd = _driver(temp, node, CODE % str(wd))
    assert text == text2 == "shipped" and head_node != joined_node
    assert os.path.basename(head_cwd) == os.path.basename(joined_cwd)   # the same package hash
    assert head_cwd != joined_cwd   # ... unpacked by each node in its own session dir
    assert os.stat(joined_cwd).st_mode & 0o077 == 0
