"""The chaos tier: processes are killed at random under a mixed workload.

    raylite start --head (private temp dir) ◄── drivers: workload.py (tasks, nested
        │                                        tasks, actors, large objects)
        └─ monkey: every 50-300 ms kills a worker, the fork server (the first one:
           node.json names it, not its replacement), or a driver
           (then starts a new driver); a separate test kills the node daemon itself

What must hold: every result a driver checks is right or a precise error (workload.py);
nothing hangs (every get() is bounded, every process is waited for with a bound); the
node is not wedged afterwards (a fresh driver runs a round of work); `raylite stop`
leaves no process, segment or session dir. CI runs each for CHAOS_SECONDS (default 12);
RAYLITE_CHAOS_SECONDS=300 makes a long run (`pytest -m chaos` selects this tier).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest
from sessions import is_cleaned

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
SECONDS = float(os.environ.get("RAYLITE_CHAOS_SECONDS", "12"))
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SECONDS + 240)]


def _cli(*args, temp, timeout=60):
    return subprocess.run([sys.executable, "-m", "raylite", *args, "--temp-dir", str(temp)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def head(tmp_path):
    """A head started with `raylite start`, stopped with `raylite stop` at the end."""
    temp = tmp_path / "t"
    out = _cli("start", "--head", "--port", "0", "--num-cpus", "2", temp=temp)
    assert out.returncode == 0, out.stdout + out.stderr
    pid = int((temp / "raylite_current_cluster").read_text().split()[1])
    session = (temp / "raylite_current_cluster").read_text().split()[2]
    yield temp, pid, session
    _cli("stop", "--force", temp=temp)


class Drivers:
    def __init__(self, temp, out_dir):
        self.temp, self.out_dir, self.procs, self.n = temp, out_dir, [], 0

    def start(self, seconds):
        self.n += 1
        out = self.out_dir / f"driver{self.n}.json"
        env = dict(os.environ, RAYLITE_TEMP_DIR=str(self.temp), RAYLITE_ADDRESS="auto")
        p = subprocess.Popen([sys.executable, WORKLOAD, str(seconds), str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append((p, out, False))
        return p

    def kill_one(self, rng):
        live = [i for i, (p, _, killed) in enumerate(self.procs) if p.poll() is None and not killed]
        if not live:
            return False
        i = rng.choice(live)
        p, out, _ = self.procs[i]
        p.kill()
        self.procs[i] = (p, out, True)
        return True

    def finish(self, timeout):
        """[(exit code, summary or None, stderr tail)] of the drivers not killed on purpose;
        self.killed: the last summaries of those that were."""
        self.killed = []
        deadline = time.monotonic() + timeout
        results = []
        for p, out, killed in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                results.append(("hung", None, p.stderr.read()[-3000:]))
                p.stderr.close()
                continue
            err = p.stderr.read()[-3000:]
            p.stderr.close()
            summary = json.loads(out.read_text()) if out.exists() else None
            if not killed:
                results.append((p.returncode, summary, err))
            elif summary is not None:
                self.killed.append(summary)
        return results


def _descendants(pid):
    """The live (not zombie) processes under `pid`."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for c in kids:
        try:
            if c.status() != psutil.STATUS_ZOMBIE:
                out.append(c)
        except psutil.NoSuchProcess:
            pass
    return out


def _fork_server(pid, session):
    try:
        zpid = json.load(open(os.path.join(session, "node.json")))["zygote_pid"]
    except (OSError, ValueError, KeyError):
        return None
    return zpid if zpid in {c.pid for c in _descendants(pid)} else None


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def _assert_gone(pid, session, temp):
    out = _cli("stop", temp=temp)
    assert out.returncode == 0, out.stdout + out.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (psutil.pid_exists(pid) or not is_cleaned(session)):
        time.sleep(0.05)
    assert is_cleaned(session), "the session dir was left behind"
    left = [c for c in psutil.process_iter(["pid"]) if c.pid == pid]
    assert not left or left[0].status() == psutil.STATUS_ZOMBIE


def test_random_kills_under_mixed_load(head, tmp_path):
    temp, pid, session = head
    rng = random.Random(int(os.environ.get("RAYLITE_CHAOS_SEED", time.time_ns() % 10**6)))
    drivers = Drivers(temp, tmp_path)
    for _ in range(2):
        drivers.start(SECONDS)
    kills = {"worker": 0, "fork server": 0, "driver": 0}
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.05, 0.3))
        roll = rng.random()
        if roll < 0.6:
            zpid = _fork_server(pid, session)
            workers = [c.pid for c in _descendants(pid) if c.pid != zpid]
            if workers and _kill(rng.choice(workers)):
                kills["worker"] += 1
        elif roll < 0.65:
            zpid = _fork_server(pid, session)
            if zpid and _kill(zpid):
                kills["fork server"] += 1
        elif roll < 0.72 and drivers.kill_one(rng):
            kills["driver"] += 1
            drivers.start(max(1.0, end - time.monotonic()))
    results = drivers.finish(timeout=90)
    report = f"seed/kills {kills}; drivers: " + "; ".join(
        f"exit {code}: {summary} {err if code != 0 else ''}" for code, summary, err in results)
    assert kills["worker"] > 0, report
    for code, summary, err in results:
        assert code == 0 and summary and not summary["bad"], report
    assert sum(s["ok"] for _, s, _ in results) > 0, report
    everyone = [s for _, s, _ in results] + drivers.killed
    assert not any(s["bad"] for s in drivers.killed), drivers.killed  # right until it was killed
    expected: dict = {}
    for s in everyone:
        for k, v in s["expected"].items():
            expected[k] = expected.get(k, 0) + v
    print(f"\nchaos: {SECONDS:.0f}s, kills {kills}, {sum(s['rounds'] for s in everyone)} rounds, "
          f"{sum(s['ok'] for s in everyone)} checked results right, expected errors {expected}")
    # The node is not wedged: a fresh driver runs a round of everything after the chaos.
    after = Drivers(temp, tmp_path / "after")
    (tmp_path / "after").mkdir()
    after.start(0.1)
    [(code, summary, err)] = after.finish(timeout=90)
    assert code == 0 and summary["ok"] >= 6 and not summary["bad"], (code, summary, err)
    _assert_gone(pid, session, temp)


def test_node_daemon_killed_under_load(head, tmp_path):
    temp, pid, session = head
    drivers = Drivers(temp, tmp_path)
    for _ in range(2):
        drivers.start(60)
    time.sleep(min(3.0, SECONDS / 2))  # both are mid-workload
    tree = _descendants(pid)
    assert _kill(pid)
    t = time.monotonic()
    results = drivers.finish(timeout=60)
    took = time.monotonic() - t
    for code, summary, err in results:
        # every pending and later call failed with the precise "cluster is gone" error
        assert code == 3, (code, summary, err)
        assert "cluster gone" in summary["expected"] and not summary["bad"], summary
    assert took < 45, f"the drivers took {took:.1f}s to notice"
    print(f"\ndaemon killed: {len(results)} drivers failed with the cluster-gone error in {took:.2f}s")
    _assert_gone(pid, session, temp)
    for c in tree:  # nothing of the dead daemon's tree may survive `raylite stop`
        try:
            assert c.status() == psutil.STATUS_ZOMBIE, f"{c} outlived its daemon"
        except psutil.NoSuchProcess:
            pass
