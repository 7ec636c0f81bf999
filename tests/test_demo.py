"""The README's demo and API tour run, on a local cluster and in local mode."""
import os
import pathlib
import subprocess
import sys

import pytest

DEMO = pathlib.Path(__file__).resolve().parents[1] / "examples" / "demo.py"


@pytest.mark.parametrize("local_mode", ["0", "1"])
def test_demo_runs(local_mode):
    env = dict(os.environ, RAYLITE_LOCAL_MODE=local_mode)
    out = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, env=env,
                         timeout=90)
    assert out.returncode == 0, out.stderr
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out.stdout
    assert "sum of squares, computed by a task from refs: 285" in out.stdout
    assert "counter after 3 calls: 106" in out.stdout
    assert "caught the remote error as a ValueError" in out.stdout
    assert out.stdout.rstrip().endswith("shut down cleanly")
    assert ("local mode" in out.stdout) == (local_mode == "1")


@pytest.mark.parametrize("local_mode", ["0", "1"])
def test_readme_tour_runs(local_mode):
    import re

    readme = (DEMO.parents[1] / "README.md").read_text()
    tour = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    env = dict(os.environ, RAYLITE_LOCAL_MODE=local_mode)
    out = subprocess.run([sys.executable, "-c", tour], capture_output=True, text=True, env=env,
                         timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[0, 1, 4, 9]\n2\n3\n") and "ValueError: bad input" in out.stdout
