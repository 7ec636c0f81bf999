"""Nodes with network stacks of their own: Linux network namespaces on a bridge (the
harness of tests/multinode, whose conftest.py makes the `net` fixture of it, and of
benchmarks/multinode.py, which starts raylite and Ray in it).

    switch netns <P>sw: bridge br0 ── veth v0 ─ eth0 <S>.1  netns <P>n0 (the head)
                                  ── veth v1 ─ eth0 <S>.2  netns <P>n1
                                  ── veth v2 ─ eth0 <S>.3  netns <P>n2

Every name starts with a prefix unique to this run (<P>: $RAYLITE_NETNS_PREFIX, else
"rlt", then the pid and random hex), the bridge and the host
ends of the veth pairs live in the switch namespace (nothing is added to the
machine's own network namespace), and the addresses are in 198.18.0.0/24 only
(reserved for benchmarks): the hosts of <S>, the subnet given to Net ($RAYLITE_NETNS_SUBNET,
else 198.18.0.0/24; a slice such as 198.18.0.64/27 keeps runs side by side apart), from
its first address on. Each node is a holder process (`sleep infinity`) started
by `ip netns exec <ns> setsid -f unshare -m -p -f --mount-proc`, which mounts a tmpfs
of its own on /dev/shm: its own mount and PID namespaces. The node's daemon and the
test's drivers run in those namespaces through `nsenter -t <holder> -m -p -n`. The
daemon is started with `setsid -f`, so it (and its workers) are children of the
holder, not of pytest: the suite's leak guard sees only the drivers, which end
before their test does.

Teardown (fixture finalizers, also after a failure or an interrupted setup): every
process in each of our network namespaces is killed (`ip netns pids`: killing the
holder, PID 1 of its PID namespace, ends everything in it), then each namespace we
made is deleted, which deletes its veth ends and the bridge. Nothing else is touched.

Skipped with the reason where this is not root, or `ip`, `unshare` or `nsenter` are
missing, or the kernel refuses network namespaces. Large objects cross the veth links as
on separate machines (test_netns_objects_groups.py moves 64 MiB ones).
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

SUBNET = "198.18.0.0/24"     # the default; every subnet must lie inside it
START_TIMEOUT_S = 30.0
DRIVER_TIMEOUT_S = 60.0


def read_line(proc: subprocess.Popen, deadline: float) -> str:
    """The next line a driver (a subprocess with a stdout pipe) prints, read by `deadline`
    (time.monotonic()); AssertionError, with what came so far, when it does not come."""
    import select

    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the driver printed no line in time; so far {buf!r}")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                raise AssertionError(f"the driver ended early: {buf!r}\n{proc.stderr.read()}")
            buf += chunk
    return buf.decode()


def driver_result(proc: subprocess.Popen, timeout: float) -> dict:
    """The JSON line a driver prints last, and its clean exit, within `timeout` seconds."""
    result = json.loads(read_line(proc, time.monotonic() + timeout))
    assert proc.wait(timeout) == 0, proc.stderr.read()
    return result


def stop_driver(proc: subprocess.Popen) -> None:
    """Kills a driver still running (a test failed), and closes its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def why_skip(prefix: str = "") -> str | None:
    """Why namespaces cannot be made here (None: they can); the probe namespace's name
    starts with `prefix` (else $RAYLITE_NETNS_PREFIX, else "rlt")."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns, unshare, mounts)"
    for tool in ("ip", "unshare", "nsenter", "setsid"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = f"{prefix or os.environ.get('RAYLITE_NETNS_PREFIX', 'rlt')}probe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` fails here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _pids(ns: str) -> list[int]:
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


def _subnet(text: str, size: int) -> ipaddress.IPv4Network:
    """The subnet the nodes' addresses come from: inside 198.18.0.0/24, room for `size`."""
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError as e:
        raise ValueError(f"network namespace subnet {text!r}: {e} (e.g. 198.18.0.64/27)") from None
    if not net.subnet_of(ipaddress.IPv4Network(SUBNET)):
        raise ValueError(f"network namespace subnet {text}: it must lie inside {SUBNET}, the "
                         "range reserved for benchmarks")
    if net.num_addresses - 2 < size:
        raise ValueError(f"network namespace subnet {text} has {net.num_addresses - 2} host "
                         f"addresses; {size} nodes need as many")
    return net


class NetNode:
    """One node: its namespace, address, holder pid, temp dir; its daemon once started."""

    def __init__(self, net: "Net", index: int):
        self.net, self.index = net, index
        self.ns = f"{net.prefix}n{index}"
        self.ip = str(net.subnet.network_address + index + 1)
        self.temp = os.path.join(net.tmp, f"node{index}")
        self.holder = 0
        self.address = ""
        self.node_id = ""

    def make(self) -> None:
        net = self.net
        _ip("netns", "add", self.ns)
        _ip("-n", net.switch, "link", "add", f"v{self.index}", "type", "veth", "peer", "name",
            "eth0", "netns", self.ns)
        _ip("-n", net.switch, "link", "set", f"v{self.index}", "master", "br0", "up")
        _ip("-n", self.ns, "addr", "add", f"{self.ip}/{net.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", self.ns, "link", "set", "eth0", "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        subprocess.run(["ip", "netns", "exec", self.ns, "setsid", "-f", "unshare", "-m", "-p", "-f",
                        "--mount-proc", "sh", "-c",
                        f"mount -t tmpfs -o size={net.shm},mode=1777 tmpfs /dev/shm && "
                        "exec sleep infinity"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.holder = self._find_holder()

    def _find_holder(self) -> int:
        """The pid (ours) of the namespace's `sleep infinity`, PID 1 of its PID namespace."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for pid in _pids(self.ns):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = f.read()
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                nspid = next((ln.split()[1:] for ln in status.splitlines()
                              if ln.startswith("NSpid:")), [])
                if comm == "sleep" and nspid[-1:] == ["1"] and len(nspid) == 2:
                    return pid
            time.sleep(0.02)
        raise RuntimeError(f"the holder of {self.ns} did not start")

    def enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder), "-m", "-p", "-n", "--"]

    def env(self) -> dict:
        return dict(os.environ, RAYLITE_CLUSTER_TOKEN=self.net.token, RAYLITE_TEMP_DIR=self.temp,
                    PYTHONUNBUFFERED="1")

    def start(self, *args: str) -> None:
        """Starts this node's daemon (args: its flags) and waits for READY."""
        os.makedirs(self.temp, mode=0o700, exist_ok=True)
        log = open(os.path.join(self.net.tmp, f"node{self.index}.log"), "ab")
        cmd = self.enter() + ["setsid", "-f", sys.executable, "-m", "raylite._node.main",
                              "--temp-dir", self.temp, *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                env=self.env())
        log.close()
        line = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        import select

        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        proc.stdout.close()
        proc.wait(10)  # nsenter and setsid: the daemon goes on under the holder
        text = line.decode(errors="replace")
        if not text.startswith("READY "):
            raise RuntimeError(f"node {self.ns} did not start: {text!r}\n{self.log()}")
        _, self.address, session = text.split()
        with open(os.path.join(session, "node.json")) as f:
            self.node_id = json.load(f)["node_id"]

    def log(self) -> str:
        try:
            with open(os.path.join(self.net.tmp, f"node{self.index}.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def run(self, code: str, *args: str, check: bool = True, python: str = sys.executable,
            timeout: float = DRIVER_TIMEOUT_S, env: dict | None = None) -> subprocess.CompletedProcess:
        """Runs `code` with `python` in this node's namespaces (a driver; `env`: variables
        to add); its last stdout line is JSON (parsed into .result when check)."""
        r = subprocess.run(self.enter() + [python, "-c", textwrap.dedent(code), *args],
                           capture_output=True, text=True, env={**self.env(), **(env or {})},
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, f"driver on {self.ns} failed:\n{r.stdout}\n{r.stderr}"
            r.result = json.loads(r.stdout.strip().splitlines()[-1])
        return r


class Net:
    """`size` nodes (NetNode) on one bridge, each with a tmpfs of `shm` (a mount size) on
    /dev/shm; `make()` builds them, `teardown()` removes every trace."""

    def __init__(self, tmp: str, size: int, shm: str = "256m", prefix: str = "",
                 subnet: str = ""):
        prefix = prefix or os.environ.get("RAYLITE_NETNS_PREFIX", "rlt")
        self.subnet = _subnet(subnet or os.environ.get("RAYLITE_NETNS_SUBNET", SUBNET), size)
        self.prefix = f"{prefix}{os.getpid() % 100000}{os.urandom(2).hex()}"
        self.switch = f"{self.prefix}sw"
        self.tmp = tmp
        self.token = os.urandom(32).hex()
        self.shm = shm
        self.made: list[str] = []
        self.nodes = [NetNode(self, i) for i in range(size)]

    def make(self) -> None:
        _ip("netns", "add", self.switch)
        self.made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for n in self.nodes:
            self.made.append(n.ns)
            n.make()

    def teardown(self) -> None:
        """Kills every process in our namespaces, then deletes them (only ours)."""
        for ns in reversed(self.made):
            deadline = time.monotonic() + 10
            pids = _pids(ns)
            while pids and time.monotonic() < deadline:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
                pids = _pids(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()
