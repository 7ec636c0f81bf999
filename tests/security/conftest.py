"""The security tier: another local user attacks a cluster run by this one.

CI runs as root, so the attacker is the user `nobody`: its code runs in a separate
process under `setpriv` with nobody's uid and gid and no supplementary groups, using
the system's Python (stdlib only: the attacker has no raylite and cannot read ours).

    attacker(code)      runs `code` as nobody; returns the CompletedProcess
    evil_pickle(path)   bytes that, when unpickled, create the file `path` (a canary:
                        the test asserts it never appears)
"""
import os
import pickle
import shutil
import subprocess

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"


def _can_drop() -> str | None:
    if os.geteuid() != 0:
        return "playing a second user needs root (CI runs as root)"
    if not shutil.which("setpriv"):
        return "setpriv (util-linux) is not installed"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is not there for the attacker to run"
    return None


class _Canary:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_pickle(path: str) -> bytes:
    """A pickle whose loading creates `path` (protocol 2: any unpickler reads it)."""
    return pickle.dumps(_Canary(str(path)), 2)


@pytest.fixture
def attacker(tmp_path):
    why = _can_drop()
    if why:
        pytest.skip(why)
    os.chmod(tmp_path, 0o755)  # the attacker may read scripts we leave for it here

    def run(code: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              SYSTEM_PYTHON, "-c", code], capture_output=True, text=True,
                             timeout=timeout, cwd="/", env={"PATH": "/usr/bin:/bin"})
        if check and out.returncode != 0:
            raise AssertionError(f"the attacker's script failed ({out.returncode}):\n{out.stderr}")
        return out
    return run


@pytest.fixture
def attacker_spawn():
    """Starts attacker code as nobody in the background (a fake server that must keep
    running during the test); every process it started is killed at the end, by pid."""
    why = _can_drop()
    if why:
        pytest.skip(why)
    procs = []

    def spawn(code: str) -> subprocess.Popen:
        p = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                              SYSTEM_PYTHON, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd="/",
                             env={"PATH": "/usr/bin:/bin"})
        procs.append(p)
        return p
    yield spawn
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
