"""The node daemon process: `python -m raylite._node.main [--record | --address HEAD] ...`.

    main ─► imports (what workers need, then the server and GCS) ─► gc.freeze
         ─► Zygote (forked while still single-threaded; it waits for its settings)
         ─► token ─► Listener (--host; default 127.0.0.1, or, joining a head on another
                     machine, this machine's address on the route to it) ─► session dir
         ─► Zygote.configure ─► NodeServer
         ─► the head (no --address): the cluster's GCS lives in this process
                GcsService (_gcs/service.py) ◄─ inproc.direct_pipe ─► NodeServer.attach_gcs:
                RegisterNode ◄─ NodeRegistered; node daemons that join reach the GCS
                through this daemon's listener (channel b"s", handed over)
            --client-port P: the listener listens on P too (Ray's client port, for
                ray://host:P drivers): the same handshake and token; node.json says
                where ("client_address") or why not ("client_error")
            --record:  <temp>/raylite_current_cluster = "address pid session_dir"
            --address: <temp>/raylite_nodes/<pid> = "address pid session_dir head", then join:
                connect(HEAD, token, channel b"s") ─► NodeServer.attach_gcs: RegisterNode
                (req, node_id, address, resources, hostname) ◄─ NodeRegistered(req, ok, error)
                the link stays open; when the head goes away this node stops
         ─► NodeServer.start(), prints "READY <address> <session dir>" on stdout, then
            serves until SIGTERM, a Shutdown message, the head going away (joined
            nodes), or (driver-started clusters) the driver that started it disconnects.

A start-up failure prints "ERROR <why>" on stdout (and the reason on stderr)
instead of READY, and exits 1. The cluster token comes from
RAYLITE_CLUSTER_TOKEN (hex), else, for a joining node, from this machine's
session of the head (token_for), else it is created here; it is written to
<session dir>/token, readable only by its owner. <session dir>/node.json holds
the address, pid, zygote pid and node id (`raylite stop` uses the id to remove
the shm segments of a daemon that was killed).

The node's address (READY, node.json, what it registers with the GCS, where its
workers listen) is the one other nodes reach it at: --node-ip-address, else the
--host address, else (listening on 0.0.0.0) this machine's address on the route
to the head; never a wildcard. A joined node's record also names the head it
joined (for init(address="auto") and init(address=HEAD) on that machine). Tasks
run on the driver's node when they fit there and spill to other nodes when they
do not (_node/spillback.py); the GCS places actors (_gcs/placement.py).

This is the one module where the node daemon and the GCS meet: it composes them
in the head's process; they talk only through messages on an in-process link.

The temp dir (--temp-dir, else RAYLITE_TEMP_DIR, else /tmp/raylite_<uid>), the
session dir and every file written in them are this user's alone
(_private_files): a temp dir that is another user's, a link, or open to group
or other is refused with "ERROR <which path, what to do>". With --log-file
(stderr is appended to that file by `raylite start`) the root logger's handler
rotates it by size (log_file.RotatingStderr).
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from .. import _private_files as private


def make_session_dir(temp_dir: str, head: bool = False) -> str:
    """<temp>/session_<time>_<pid>, and the temp dir itself if missing, both 0700 and ours.
    A head first removes the logs kept by the clusters that stopped before (_session.py)."""
    from .._session import remove_ended

    private.make_dir(temp_dir)
    if head:
        remove_ended(temp_dir)
    path = os.path.join(temp_dir, f"session_{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}")
    private.make_dir(path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="raylite-node")
    ap.add_argument("--host", default=None,
                    help="interface to listen on (default: 127.0.0.1, or, joining a head on "
                         "another machine, this machine's address on the route to it)")
    ap.add_argument("--node-ip-address", default=None,
                    help="the address other nodes and drivers reach this node at (default: "
                         "the --host address; for 0.0.0.0, the address on the route to the head)")
    ap.add_argument("--labels", default="{}", help="node labels as a JSON object of str -> str")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--num-cpus", type=float, default=None)
    ap.add_argument("--num-gpus", type=float, default=None)
    ap.add_argument("--resources", default="{}")
    ap.add_argument("--object-store-memory", type=int, default=None)
    ap.add_argument("--temp-dir", default=None,
                    help="default: $RAYLITE_TEMP_DIR or /tmp/raylite_<uid>")
    ap.add_argument("--owner-pid", type=int, default=None)
    ap.add_argument("--record", action="store_true", help="record this cluster for address='auto'")
    ap.add_argument("--address", default=None, help="join the head at HOST:PORT as a worker node")
    ap.add_argument("--client-port", type=int, default=None,
                    help="the head: also listen on this port (Ray's client port; 0 = any free)")
    ap.add_argument("--client-port-required", action="store_true",
                    help="fail to start when --client-port cannot be bound (else: a warning)")
    ap.add_argument("--log-file", default=None,
                    help="the file stderr is appended to (by `raylite start`): keep it under "
                         "RAYLITE_ROTATION_MAX_BYTES by rotating it")
    args = ap.parse_args(argv)
    cfg = _read_config()
    args.temp_dir = args.temp_dir or cfg.temp_dir

    import gc

    from .._protocol import messages  # noqa: F401  (what both this daemon and workers use:
    from .worker_pool import Zygote             # imported once, its pages shared)

    gc.freeze()  # what is imported is never traversed by the collector, here or in the zygote
    zygote = Zygote.fork()  # and its workers: the pages they share stay shared. The zygote
    # imports what a worker needs (preload) on the other core while this daemon imports its own
    from .._protocol.transport import Listener
    from .server import NodeServer
    if not args.address:  # the head's GCS
        from .._gcs import service  # noqa: F401

    token, total, ip, labels = _token_and_resources(args)
    try:
        listener = Listener(args.host, args.port, token)
    except OSError as e:
        hint = (" (another process already uses that port: pick another with --port, or stop it)"
                if e.errno == errno.EADDRINUSE else "")
        _fail(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}{hint}")
    client = _listen_for_clients(listener, args)
    try:
        session_dir = make_session_dir(args.temp_dir, head=not args.address)
    except private.NotPrivateError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot make a session dir in the temp dir {args.temp_dir}: {e}")
    private.write_text(os.path.join(session_dir, "token"), token.hex())
    # The address others reach this node at: its workers listen on that IP too, so that
    # owners on other nodes can push tasks to them.
    advertised = f"{ip}:{listener.address.rpartition(':')[2]}"
    address = advertised
    node_id = (cfg.node_id_prefix + os.urandom(16))[:16]

    zygote.configure((address, token, session_dir, node_id))
    server = NodeServer(listener, zygote, total, session_dir, warm_workers=int(total["CPU"]),
                        owner_pid=args.owner_pid, node_id=node_id,
                        idle_kill_s=cfg.idle_worker_kill_ms / 1000)
    server.at = advertised  # where other nodes pull this node's objects from
    if args.log_file:  # after the zygote fork: workers keep the plain stderr handling
        from .log_file import RotatingStderr

        RotatingStderr.install(args.log_file, cfg.rotation_max_bytes, cfg.rotation_backup_count)
    private.write_text(os.path.join(session_dir, "node.json"),
                  json.dumps({"address": address, "pid": os.getpid(), "zygote_pid": zygote.pid,
                               "node_id": node_id.hex(), **client}))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    recorded = gcs = None
    if args.address:  # a worker node: record our pid for `raylite stop`, then join the head
        recorded = os.path.join(args.temp_dir, "raylite_nodes", str(os.getpid()))
        private.make_dir(os.path.dirname(recorded))
        private.write_text(recorded, f"{address} {os.getpid()} {session_dir} {args.address}\n")
        try:
            _join(args.address, token, node_id, advertised, total, server, labels)
        except (ConnectionError, RuntimeError, OSError, EOFError) as e:
            print(f"raylite node daemon: {e}", file=sys.stderr, flush=True)
            print(f"ERROR {e}", flush=True)
            server.stop()
            _forget(recorded, session_dir)
            os._exit(1)
    else:  # the head: the GCS serves in this process
        gcs = _start_gcs(server, advertised, total, node_id, labels, cfg.task_events_max_per_job,
                         cfg.health_check_timeout_s)
        if args.record:
            recorded = os.path.join(args.temp_dir, "raylite_current_cluster")
            private.write_text(recorded, f"{address} {os.getpid()} {session_dir}\n")
    server.start()
    zygote.wait_preloaded()  # the first task finds its worker as fast as before the split
    server.wait_warm(WARM_WAIT_S)  # and an idle warm worker at once
    print(f"READY {address} {session_dir}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # whoever read READY may close the pipe
    os.close(devnull)
    while not server.stopped.wait(0.5):  # wakes to run a SIGTERM handler (the kernel may
        server.tick(time.monotonic())     # deliver it to another thread) and to stop idle workers
    server.stop()  # no-op when a Shutdown message or SIGTERM already began it
    server.finished.wait()
    if gcs is not None:
        gcs.stop()  # the joined nodes see their link close, and stop
    _forget(recorded, session_dir)
    sys.stdout.flush()
    os._exit(0)


def _forget(recorded: str | None, session_dir: str) -> None:
    """Removes this daemon's record (if it is still ours) and ends its session dir (all of
    it but the logs: _session.end)."""
    from .._session import end

    try:
        if recorded and (private.read_text(recorded) or "").split()[1:2] == [str(os.getpid())]:
            os.unlink(recorded)
    except (OSError, private.NotPrivateError):
        pass
    end(session_dir)


_WILDCARD = ("0.0.0.0", "::", "")
JOIN_TIMEOUT_S = 10.0
WARM_WAIT_S = 2.0     # READY waits at most this long for a warm worker to register
GCS_ADDRESS = "inproc://gcs"  # how the head daemon names its link to the GCS (its peer)


def _fail(text: str) -> NoReturn:
    """A start-up error: on stderr for people, as "ERROR ..." on stdout for whoever waits for READY."""
    print(f"raylite node daemon: {text}", file=sys.stderr, flush=True)
    print(f"ERROR {text}", flush=True)
    sys.exit(1)


def _listen_for_clients(listener, args: argparse.Namespace) -> dict:
    """The head's Ray client port (--client-port): {"client_address": host:port}, or
    {"client_error": why} when it cannot be bound and was not required (then logged)."""
    if args.client_port is None or args.address:
        return {}
    try:
        return {"client_address": listener.listen_also(args.host, args.client_port)}
    except OSError as e:
        hint = " (another process uses it)" if e.errno == errno.EADDRINUSE else ""
        why = (f"cannot listen on Ray's client port {args.host}:{args.client_port}: "
               f"{e.strerror or e}{hint}")
        if args.client_port_required:
            listener.close()
            _fail(f"{why}; pick another with --ray-client-server-port")
        print(f"raylite node daemon: {why}; ray:// addresses will not reach this cluster",
              file=sys.stderr, flush=True)
        return {"client_error": why}


def _read_config():
    from .. import _config

    try:
        return _config.from_env()
    except ValueError as e:
        _fail(str(e))


def _token_and_resources(args: argparse.Namespace) -> tuple[bytes, dict, str, dict]:
    """The cluster token, this node's total resources, the IP other nodes reach it at (and
    args.host filled in: what to listen on), and its labels."""
    token_hex = os.environ.pop("RAYLITE_CLUSTER_TOKEN", "")
    if not token_hex and args.address:
        from .._session import token_for

        try:
            token_hex = token_for(args.address, args.temp_dir).hex()
        except (ConnectionError, ValueError, private.NotPrivateError) as e:
            _fail(str(e))
    try:
        token = bytes.fromhex(token_hex) if token_hex else os.urandom(32)
    except ValueError:
        _fail("RAYLITE_CLUSTER_TOKEN is not a hex token: use the one `raylite start --head` printed.")
    try:
        resources = json.loads(args.resources)
        if not isinstance(resources, dict):
            raise ValueError("expected a JSON object")
    except ValueError as e:
        _fail(f"--resources is not a JSON object of name -> amount ({e})")
    try:
        labels = json.loads(args.labels)
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in labels.items()):
            raise ValueError("expected a JSON object of string -> string")
    except ValueError as e:
        _fail(f"--labels is not a JSON object of name -> value ({e})")
    from .._protocol.transport import source_ip

    # A head listening on every interface: its address on the way to a private network.
    route = source_ip(args.address.rpartition(":")[0] if args.address else "10.255.255.255")
    if args.host is None:  # joining a head on another machine: listen where it reaches us
        args.host = route if args.address else "127.0.0.1"
    ip = args.node_ip_address or (route if args.host in _WILDCARD else args.host)
    from .._resources import node_total

    return token, node_total(args.num_cpus, args.num_gpus, resources, args.object_store_memory,
                             ip), ip, labels


def _start_gcs(server, address: str, total: dict, node_id: bytes, labels: dict,
               task_events_per_job: int, health_timeout_s: float):
    """The head: the cluster's GCS in this process, this daemon its first node."""
    from .._gcs.service import GcsService
    from .._protocol import inproc

    gcs = GcsService(head_node_id=node_id, task_events_per_job=task_events_per_job,
                     health_timeout_s=health_timeout_s)
    server.gcs_accept = gcs.adopt  # nodes joining through our listener
    node_end, gcs_end = inproc.direct_pipe("head node", GCS_ADDRESS, b"s")
    gcs.adopt(gcs_end, checked=True)  # this daemon validates what it forwards
    try:
        server.attach_gcs(node_end, address, total, labels)
    except (ConnectionError, RuntimeError) as e:
        _fail(f"the GCS in this process did not take this node: {e}")
    return gcs


def _join(head: str, token: bytes, node_id: bytes, address: str, total: dict, server,
          labels: dict) -> None:
    """Registers this node with the head's GCS; this node stops when the head goes away."""
    from .._protocol.transport import connect

    conn = connect(head, token, timeout=JOIN_TIMEOUT_S, channel=b"s")
    try:
        server.attach_gcs(conn, address, total, labels)
    except (ConnectionError, RuntimeError) as e:
        conn.close()
        raise type(e)(str(e).replace("the GCS at", "the head at")) from None


if __name__ == "__main__":
    main()
