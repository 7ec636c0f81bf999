"""The node daemon process: `python -m raylite._node.main --head ...`.

    main ─► session dir + token ─► Listener (127.0.0.1 unless --host)
         ─► Zygote (forked while still single-threaded) ─► NodeServer.start()
         ─► prints "READY <address> <session dir>" on stdout, then serves until
            SIGTERM, a Shutdown message, or (driver-started clusters) the
            driver that started it disconnects.

The cluster token comes from RAYLITE_CLUSTER_TOKEN (hex) or is created here;
it is written to <session dir>/token, readable only by its owner.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading


def make_session_dir(temp_dir: str) -> str:
    os.makedirs(temp_dir, mode=0o700, exist_ok=True)
    import time

    path = os.path.join(temp_dir, f"session_{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="raylite-node")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--num-cpus", type=float, default=None)
    ap.add_argument("--num-gpus", type=float, default=None)
    ap.add_argument("--resources", default="{}")
    ap.add_argument("--object-store-memory", type=int, default=None)
    ap.add_argument("--temp-dir", default="/tmp/raylite")
    ap.add_argument("--owner-pid", type=int, default=None)
    ap.add_argument("--record", action="store_true", help="record this cluster for address='auto'")
    ap.add_argument("--address", default=None, help="join the head at HOST:PORT as a worker node")
    args = ap.parse_args(argv)

    from .._protocol.transport import Listener
    from .._runtime.resources import node_total
    from .._worker import main as worker_main
    # Everything a worker needs, imported once here: forked workers share it and start fast.
    from .._runtime import cluster  # noqa: F401
    from .._worker import actor_host, task_executor  # noqa: F401
    from .server import NodeServer
    from .worker_pool import Zygote

    token_hex = os.environ.pop("RAYLITE_CLUSTER_TOKEN", "")
    if not token_hex and args.address:
        from .._runtime.cluster_start import token_for

        token_hex = token_for(args.address, args.temp_dir).hex()
    token_hex = token_hex or os.urandom(32).hex()
    token = bytes.fromhex(token_hex)
    session_dir = make_session_dir(args.temp_dir)
    write_private(os.path.join(session_dir, "token"), token_hex)
    total = node_total(args.num_cpus, args.num_gpus, json.loads(args.resources),
                       args.object_store_memory, args.host if args.host != "0.0.0.0" else "127.0.0.1")
    listener = Listener(args.host, args.port, token)
    address = listener.address
    node_id = os.urandom(16)

    def run_worker(worker_id: bytes) -> None:
        listener.sock.close()
        listener.usock.close()
        worker_main.run(address, token, worker_id, session_dir, node_id)

    zygote = Zygote(run_worker)
    server = NodeServer(listener, zygote, total, session_dir, warm_workers=int(total["CPU"]),
                        owner_pid=args.owner_pid, node_id=node_id)
    write_private(os.path.join(session_dir, "node.json"),
                  json.dumps({"address": address, "pid": os.getpid(), "zygote_pid": zygote.pid}))
    recorded = os.path.join(args.temp_dir, "raylite_current_cluster")
    if args.address:  # a worker node: record our pid for `raylite stop`, then join the head
        recorded = os.path.join(args.temp_dir, "raylite_nodes", str(os.getpid()))
        os.makedirs(os.path.dirname(recorded), exist_ok=True)
        write_private(recorded, f"{address} {os.getpid()} {session_dir}\n")
        try:
            _join(args.address, token, node_id, address, total, server)
        except (ConnectionError, RuntimeError) as e:
            print(f"ERROR {e}", flush=True)
            server.stop()
            os.unlink(recorded)
            os._exit(1)
    elif args.record:
        write_private(recorded, f"{address} {os.getpid()} {session_dir}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server.start()
    print(f"READY {address} {session_dir}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # whoever read READY may close the pipe
    os.close(devnull)
    server.stopped.wait()
    server.stop()  # no-op when a Shutdown message or SIGTERM already began it
    server.finished.wait()
    try:
        if args.address:
            os.unlink(recorded)
        elif args.record:
            with open(recorded) as f:
                if f.read().split()[1:2] == [str(os.getpid())]:
                    os.unlink(recorded)
    except (OSError, IndexError):
        pass
    import shutil

    shutil.rmtree(session_dir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)


def _join(head: str, token: bytes, node_id: bytes, address: str, total: dict, server) -> None:
    """Registers this node with the head; this node stops when the head goes away."""
    from .._protocol import messages as m
    from .._protocol.transport import connect

    conn = connect(head, token)
    conn.send(m.RegisterNode(1, node_id, address, total, os.uname().nodename))
    reply = conn.recv()
    if not isinstance(reply, m.NodeRegistered) or not reply.ok:
        raise RuntimeError(f"the head at {head} refused this node: {getattr(reply, 'error', reply)}")

    def watch() -> None:
        try:
            while True:
                conn.recv()
        except (EOFError, OSError):
            pass
        server.stop()

    threading.Thread(target=watch, daemon=True, name="raylite-head").start()


if __name__ == "__main__":
    main()
