"""Several nodes on one machine, for tests and demos: Ray's `ray.cluster_utils.Cluster`.

    Cluster(initialize_head=True, head_node_args={...})
        ─► a head node daemon (python -m raylite._node.main), on loopback, its own session
    cluster.add_node(num_cpus=2, resources={"b": 1}) ─► a node daemon joining the head
        (--address HEAD): registered with the head's GCS before add_node returns
    raylite.init(address=cluster.address) ─► a driver on the head node
    cluster.remove_node(node) ─► SIGTERM (allow_graceful=False: SIGKILL, its workers too)
    cluster.shutdown() ─► the driver (when connected here) and every node stop

Every daemon listens on 127.0.0.1 (its own port), runs in a session of its own and
names its shared-memory segments after its own node id, so each node has its own
object store. The cluster token is made here and handed to the daemons in their
environment; a driver finds it beside the head's session in the temp dir (the
default one, or `RAYLITE_TEMP_DIR`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

__all__ = ["Cluster", "ClusterNode"]

# add_node() / head_node_args keys -> the node daemon's flag
_ARGS = {"num_cpus": "--num-cpus", "num_gpus": "--num-gpus", "resources": "--resources",
         "object_store_memory": "--object-store-memory", "labels": "--labels"}
STOP_TIMEOUT_S = 20.0


class ClusterNode:
    """One node daemon of a Cluster: `node_id` (hex, as nodes() lists it), `address`
    (host:port), `node_ip_address`, `pid`, `session_dir`, `head`."""

    def __init__(self, proc: subprocess.Popen, address: str, session_dir: str, head: bool):
        self.proc, self.address, self.session_dir, self.head = proc, address, session_dir, head
        self.pid = proc.pid
        self.node_ip_address, _, port = address.rpartition(":")
        self.node_manager_port = int(port)
        with open(os.path.join(session_dir, "node.json")) as f:
            self.node_id = json.load(f)["node_id"]
        self.unique_id = self.node_id

    def __repr__(self) -> str:
        return f"ClusterNode({'head ' if self.head else ''}{self.address}, pid {self.pid})"


class Cluster:
    """A head and any number of nodes on this machine (Ray's Cluster API)."""

    def __init__(self, initialize_head: bool = False, connect: bool = False,
                 head_node_args: dict | None = None, shutdown_at_exit: bool = True):
        from . import _config

        self._token = os.urandom(32).hex()
        self._temp_dir = _config.from_env().temp_dir
        self.head_node: ClusterNode | None = None
        self.worker_nodes: list[ClusterNode] = []
        if shutdown_at_exit:
            import atexit

            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                import raylite

                raylite.init(address=self.address)
        elif connect:
            raise ValueError("Cluster(connect=True) needs initialize_head=True: there is no head "
                             "to connect to yet.")

    @property
    def address(self) -> str:
        """The head's host:port, for raylite.init(address=...)."""
        if self.head_node is None:
            raise RuntimeError("This Cluster has no head yet: call add_node() first.")
        return self.head_node.address

    def add_node(self, wait: bool = True, **node_args: Any) -> ClusterNode:
        """Starts a node: the head when there is none yet, else a node joining it. Keys:
        num_cpus, num_gpus, resources (dict), object_store_memory, labels (dict)."""
        from ._runtime.cluster_start import launch

        unknown = sorted(set(node_args) - set(_ARGS))
        if unknown:
            raise ValueError(f"Unknown node argument(s) {', '.join(unknown)}: raylite's Cluster "
                             f"takes {', '.join(sorted(_ARGS))}.")
        cmd = [sys.executable, "-m", "raylite._node.main", "--temp-dir", self._temp_dir]
        for key, value in node_args.items():
            if value is not None:
                cmd += [_ARGS[key], json.dumps(value) if isinstance(value, dict) else str(value)]
        head = self.head_node is None
        if not head:
            cmd += ["--address", self.head_node.address]
        env = dict(os.environ, RAYLITE_CLUSTER_TOKEN=self._token)
        proc, address, session_dir = launch(cmd, env, self._temp_dir)
        node = ClusterNode(proc, address, session_dir, head)
        if head:
            self.head_node = node
        else:
            self.worker_nodes.append(node)
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stops a node (SIGTERM; with allow_graceful=False SIGKILL to its whole process
        group: daemon, fork server and workers). Removing the head stops the others too."""
        if node is self.head_node:
            for other in list(self.worker_nodes):
                self.remove_node(other, allow_graceful)
            self.head_node = None
        elif node in self.worker_nodes:
            self.worker_nodes.remove(node)
        _stop(node.proc, allow_graceful)
        if not allow_graceful:  # what it would have removed on its way out
            import shutil

            from ._object_store import shm

            shm.remove_node_segments(node.node_id[:12])
            shutil.rmtree(node.session_dir, ignore_errors=True)
            try:
                os.unlink(os.path.join(self._temp_dir, "raylite_nodes", str(node.pid)))
            except OSError:
                pass

    def list_all_nodes(self) -> list[ClusterNode]:
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def wait_for_nodes(self, timeout: float = 30.0) -> None:
        """Returns once the head's GCS lists every node of this cluster alive (and no node
        of it that was removed); TimeoutError after `timeout` seconds."""
        want = {n.node_id for n in self.list_all_nodes()}
        deadline = time.monotonic() + timeout
        while True:
            alive = self._alive_node_ids()
            if alive == want:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"The head lists {len(alive)} live node(s), not the "
                                   f"{len(want)} of this cluster, after {timeout}s: see the "
                                   "node daemons' error output above.")
            time.sleep(0.05)

    def _alive_node_ids(self) -> set:
        from ._protocol import messages as m
        from ._protocol.transport import connect

        conn = connect(self.address, bytes.fromhex(self._token))
        try:
            conn.sock.settimeout(10.0)
            conn.send(m.GetState(1, ("nodes",), False))
            reply = conn.recv()
        finally:
            conn.close()
        return {n.node_id for n in reply.snapshot.nodes if n.alive}

    def shutdown(self) -> None:
        """Disconnects this process's driver when it is connected to this cluster, then
        stops every node. Twice is fine."""
        import raylite

        nodes = self.list_all_nodes()
        if nodes and raylite.is_initialized():
            from . import _runtime

            rt = _runtime.current()
            if getattr(rt, "daemon_address", None) in {n.address for n in nodes}:
                raylite.shutdown()
        if self.head_node is not None:
            self.remove_node(self.head_node)


def _stop(proc: subprocess.Popen, graceful: bool) -> None:
    if proc.poll() is None:
        if graceful:
            proc.terminate()
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: daemon, zygote, workers
            except ProcessLookupError:
                pass
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
