"""The pip step of a runtime_env on its own: the setup command's bound, its stop and its
failure text, and the uv branch (a stand-in `uv` on PATH that records how it was called)."""
import os
import stat
import sys
import threading
import time

import pytest
from wheels import make_wheel

from raylite import _private_files as private
from raylite._runtime_env import pip_env
from raylite.exceptions import RuntimeEnvSetupError


def test_a_setup_command_is_bounded_and_its_failure_names_its_last_lines():






    lines = []
    loud = [sys.executable, "-c", "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"]
    with pytest.raises(RuntimeEnvSetupError) as info:
        pip_env._run(loud, time.monotonic() + 600, lines.append, threading.Event())
    text = str(info.value)
    assert "exited with code 3" in text and "line 29" in text and "line 9\n" not in text
    assert lines[0].startswith("runtime_env pip: running") and lines[-1].endswith("line 29")
    slow = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(RuntimeEnvSetupError, match="setup_timeout_seconds"):
        pip_env._run(slow, time.monotonic(), lines.append, threading.Event())
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(RuntimeEnvSetupError, match="this node is stopping"):
        pip_env._run(slow, time.monotonic() + 600, lines.append, stopped)


FAKE_UV = """#!{python}
import subprocess, sys
with open({log!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[0] == "venv":   # uv venv --allow-existing --system-site-packages --python PY DIR
    sys.exit(subprocess.call([args[args.index("--python") + 1], "-m", "venv",
                              "--system-site-packages", "--without-pip", args[-1]]))
if args[:2] == ["pip", "install"]:   # uv pip install --python VENV_PY -r REQ OPTIONS...
    rest = args[2:]
    py = rest.pop(rest.index("--python") + 1)
    rest.remove("--python")
    sys.exit(subprocess.call([{python!r}, "-m", "pip", "--python", py, "install", *rest]))
sys.exit(2)
"""


def test_with_uv_on_the_path_the_venv_is_made_and_filled_by_uv(tmp_path, monkeypatch):
    bin_dir, wheels, log = tmp_path / "bin", tmp_path / "wheels", tmp_path / "uv.log"
    bin_dir.mkdir()
    wheels.mkdir()
    make_wheel(str(wheels), "rtenv_uv_demo", "installed by uv")
    uv = bin_dir / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable, log=str(log)))
    uv.chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "pip"
    private.make_dir(str(tmp_path))
    spec = {"packages": ["--no-index", f"--find-links {wheels}", "rtenv_uv_demo==0.1"],
            "options": [], "timeout": 600.0}
    python = pip_env.ensure(spec, str(cache), lambda line: None)
    calls = log.read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [["venv", "--allow-existing"], ["pip", "install"]]
    import subprocess

    out = subprocess.run([python, "-c", "import rtenv_uv_demo, raylite; print(rtenv_uv_demo.VALUE)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "installed by uv", out.stderr
    assert pip_env.ensure(spec, str(cache), lambda line: None) == python   # made once
    assert len(log.read_text().splitlines()) == 2
