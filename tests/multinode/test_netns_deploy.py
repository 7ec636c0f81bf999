"""The Kubernetes manifest's commands (deploy/k8s.yaml, docs/deploy.md) run a cluster: in two
network namespaces of their own (netns.py), `raylite start ... --block` with the head's
and the worker's args as the manifest has them ($(POD_IP) the namespace's address, the
Service's name the head's address, the token in the environment as the Secret gives it);
a driver on the worker's node sees both nodes at their pod addresses and runs SPREAD tasks
on both; then SIGTERM to each `raylite start --block` (what the kubelet and systemd send)
stops everything it started: only the namespace's holder (and its unshare) is left."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest
from netns import Net, _pids, why_skip

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                        "k8s.yaml")
STOP_TIMEOUT_S = 30.0


@pytest.fixture
def bare_net(tmp_path):
    """Two namespaces with nothing started in them."""
    why = why_skip()
    if why:
        pytest.skip(why)
    n = Net(str(tmp_path), 2)
    try:
        n.make()
        yield n
    finally:
        n.teardown()


def _manifest_args() -> dict:
    yaml = pytest.importorskip("yaml", reason="pyyaml reads the manifest (Ray's extra brings it)")
    with open(MANIFEST) as f:
        docs = list(yaml.safe_load_all(f))
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
            for d in docs if d["kind"] == "Deployment"}


class Blocking:
    """`raylite start ... --block` in a node's namespaces, as a container's main process."""

    def __init__(self, node, args: list[str]):
        self.proc = subprocess.Popen(node.enter() + [sys.executable, "-m", "raylite.cli.main",
                                                     *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=node.env())
        self.out = b""
        deadline = time.monotonic() + 60
        while b" started at " not in self.out and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                self.out += chunk
        assert b" started at " in self.out, self.out.decode(errors="replace")

    def stop(self) -> int:
        """SIGTERM to `raylite start` (nsenter's child); its exit code."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            [child] = [int(p) for p in f.read().split()]
        os.kill(child, signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        finally:
            self.proc.stdout.close()


def test_the_manifests_head_and_worker_commands_make_a_cluster_and_stop_on_sigterm(bare_net):
    args = _manifest_args()
    head, worker = bare_net.nodes
    pod = {n: [a.replace("$(POD_IP)", n.ip) for a in args[name]]
           for n, name in ((head, "raylite-head"), (worker, "raylite-worker"))}
    pod[worker] = [a.replace("raylite-head:", f"{head.ip}:") for a in pod[worker]]  # the Service
    before = {n.ns: sorted(_pids(n.ns)) for n in bare_net.nodes}   # the holder and its unshare
    started = [Blocking(head, pod[head])]
    try:
        started.append(Blocking(worker, pod[worker]))
        r = worker.run("""
import json, time, raylite
raylite.init(address="auto")
@raylite.remote
def where():
    time.sleep(0.5)   # busy long enough that the leases spread rather than one runs them all
    return raylite.get_runtime_context().get_node_id()
ran = raylite.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(4)])
print(json.dumps([sorted(n["NodeManagerAddress"] for n in raylite.nodes()), len(set(ran)),
                  raylite.cluster_resources()["CPU"]]))
""")
        assert r.result == [sorted([head.ip, worker.ip]), 2, 3.0]   # 1 + 2 CPUs, as the args say
    finally:
        codes = [b.stop() for b in reversed(started)]
    assert codes == [0] * len(started)
    for n in bare_net.nodes:   # the daemon, its fork server and workers are gone
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while sorted(_pids(n.ns)) != before[n.ns] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(_pids(n.ns)) == before[n.ns]
