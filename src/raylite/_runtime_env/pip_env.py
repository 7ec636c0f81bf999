"""A virtual environment per requirements hash, made once per node and reused.

    ensure(spec, cache_dir, log) ─► <cache_dir>/<hash>/bin/python
        <hash>.lock (flock): one maker at a time, across daemons sharing the session dir
        uv on PATH:  uv venv --system-site-packages --python <this python>, uv pip install
        otherwise:   <this python> -m venv --system-site-packages, then pip install: this
                     python's pip aimed at the venv (pip --python) when it has one, which
                     spares the venv its own copy of pip; else the venv's (ensurepip)
        raylite.pth in the venv: this interpreter's raylite and site-packages come after the
        venv's own, so raylite imports there and the installed packages win
        .raylite_ready written last: a venv without it (a crash mid-install) is made again

pip and uv read the index the machine is configured for (pip.conf, PIP_INDEX_URL,
UV_INDEX_URL ...): raylite passes none. Each line of output goes to the log as it
comes; the whole run is bounded by spec["timeout"]; a failure is a RuntimeEnvSetupError
naming the command and the last lines of its output.
"""
from __future__ import annotations

import collections
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from typing import Any, Callable

from .. import _private_files as private
from ..exceptions import RuntimeEnvSetupError

READY = ".raylite_ready"
TAIL_LINES = 20


def venv_hash(spec: dict) -> str:
    text = json.dumps([spec["packages"], spec["options"], sys.version], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def ensure(spec: dict, cache_dir: str, log: Callable[[str], None],
           stopped: threading.Event | None = None) -> str:
    """The python of the venv for `spec`, made if missing; RuntimeEnvSetupError on failure
    (also when `stopped` is set meanwhile: the install is ended)."""
    private.make_dir(cache_dir)
    h = venv_hash(spec)
    venv = os.path.join(cache_dir, h)
    python = os.path.join(venv, "bin", "python")
    fd = private.open_file(os.path.join(cache_dir, h + ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if private.check_dir(venv) and os.path.isfile(os.path.join(venv, READY)):
            return python
        if os.path.lexists(venv):
            shutil.rmtree(venv)  # a run that did not finish
        _make(spec, venv, python, log, stopped or threading.Event())
        return python
    finally:
        os.close(fd)  # releases the lock


def _make(spec: dict, venv: str, python: str, log: Callable[[str], None],
          stopped: threading.Event) -> None:
    deadline = time.monotonic() + spec["timeout"]
    uv = shutil.which("uv")
    own_pip = not uv and importlib.util.find_spec("pip") is not None
    private.make_dir(venv)
    if uv:
        _run([uv, "venv", "--allow-existing", "--system-site-packages", "--python", sys.executable,
              venv], deadline, log, stopped)
    else:
        _run([sys.executable, "-m", "venv", "--system-site-packages",
              *(["--without-pip"] if own_pip else []), venv], deadline, log, stopped)
    _link_raylite(python)
    req = os.path.join(venv, "requirements.txt")
    private.write_text(req, "\n".join(spec["packages"]) + "\n")
    if uv:
        cmd = [uv, "pip", "install", "--python", python, "-r", req, *spec["options"]]
    else:
        pip = [sys.executable, "-m", "pip", "--python", python] if own_pip else [python, "-m", "pip"]
        cmd = [*pip, "install", "--disable-pip-version-check", "-r", req, *spec["options"]]
    _run(cmd, deadline, log, stopped)
    private.write_text(os.path.join(venv, READY), "")


def _link_raylite(python: str) -> None:
    """A .pth in the venv: raylite (and what it imports) from this interpreter, after the
    venv's own packages."""
    out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, timeout=60, check=True)
    site = out.stdout.strip()
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../raylite
    here = [os.path.dirname(package),
            sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    lines = list(dict.fromkeys(p for p in here if p and os.path.isdir(p)))
    private.write_text(os.path.join(site, "raylite_runtime_env.pth"), "\n".join(lines) + "\n")


def _run(cmd: list, deadline: float, log: Callable[[str], None], stopped: threading.Event) -> None:
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    log(f"runtime_env pip: running {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def pump() -> None:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            log(f"runtime_env pip: {line}")

    reader = threading.Thread(target=pump, daemon=True, name="raylite-pip-output")
    reader.start()
    code = None
    while code is None and not stopped.is_set() and time.monotonic() < deadline:
        try:
            code = proc.wait(min(0.5, max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    if code is None:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's session
        proc.wait()
        reader.join(5)
        why = "was ended: this node is stopping" if stopped.is_set() else \
            "did not finish within the runtime_env's setup timeout " \
            "(config['setup_timeout_seconds'])"
        raise RuntimeEnvSetupError(_failure(cmd, why, tail))
    reader.join(5)
    proc.stdout.close()
    if code != 0:
        raise RuntimeEnvSetupError(_failure(cmd, f"exited with code {code}", tail))


def _failure(cmd: list, what: str, tail: Any) -> str:
    last = "\n".join(f"    {ln}" for ln in tail) or "    (no output)"
    return (f"Creating the runtime_env's pip environment failed: `{' '.join(map(str, cmd))}` "
            f"{what}. Its last lines:\n{last}\nCheck the requirements and that the package "
            "index this machine is configured for can serve them.")
