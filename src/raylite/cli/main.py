"""The `raylite` command: start, stop, status, memory, microbenchmark.

    raylite start --head [--port 6380] [--num-cpus N] ...   a head that drivers join with
                                                          init(address="auto")
    raylite start --address HOST:PORT                      a node that joins that head
    raylite stop                                           stops what `start` started here
    raylite status | memory                                what the cluster holds
    raylite microbenchmark                                 raylite's core microbenchmarks

Every command imports what it needs when it runs, so `raylite --help` is quick.
Processes are found through the records `start` writes under the temp dir
(<temp>/raylite_current_cluster, <temp>/raylite_nodes/<pid>) and stopped by
pid, never by name.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

DEFAULT_TEMP = "/tmp/raylite"


def _temp_dir(args: argparse.Namespace) -> str:
    return args.temp_dir or os.environ.get("RAYLITE_TEMP_DIR") or DEFAULT_TEMP


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_record(path: str) -> tuple[str, int, str] | None:
    try:
        with open(path) as f:
            address, pid, session = f.read().split()[:3]
        return address, int(pid), session
    except (OSError, ValueError):
        return None


def _head_record(temp: str) -> tuple[str, int, str] | None:
    rec = _read_record(os.path.join(temp, "raylite_current_cluster"))
    return rec if rec and _alive(rec[1]) else None


def _node_records(temp: str) -> list[tuple[str, tuple[str, int, str]]]:
    d = os.path.join(temp, "raylite_nodes")
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        rec = _read_record(os.path.join(d, name))
        if rec:
            out.append((os.path.join(d, name), rec))
    return out


def _daemon_cmd(args: argparse.Namespace, temp: str) -> list[str]:
    cmd = [sys.executable, "-m", "raylite._node.main", "--temp-dir", temp, "--host", args.host,
           "--port", str(args.port)]
    for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus),
                        ("--object-store-memory", args.object_store_memory)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.resources:
        cmd += ["--resources", args.resources]
    return cmd


def cmd_start(args: argparse.Namespace) -> int:
    temp = _temp_dir(args)
    if args.resources:
        try:
            res = json.loads(args.resources)
            if not isinstance(res, dict) or not all(isinstance(v, (int, float)) for v in res.values()):
                raise ValueError("expected an object of name -> number")
        except ValueError as e:
            print(f"raylite start: --resources is not valid JSON resources ({e}); "
                  'example: --resources \'{"custom": 2}\'', file=sys.stderr)
            return 2
    if not args.head and not args.address:
        print("raylite start: pass --head to start a head, or --address HOST:PORT to join one.",
              file=sys.stderr)
        return 2
    if args.head:
        running = _head_record(temp)
        if running:
            print(f"raylite start: a head is already running here at {running[0]} (pid {running[1]}). "
                  "Stop it first with `raylite stop`.", file=sys.stderr)
            return 1
    cmd = _daemon_cmd(args, temp) + (["--record"] if args.head else ["--address", args.address])
    os.makedirs(temp, mode=0o700, exist_ok=True)
    log_path = os.path.join(temp, "raylite_head.log" if args.head else "raylite_node.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=not args.block)
    line = proc.stdout.readline().decode().strip()
    proc.stdout.close()
    if not line.startswith("READY "):
        proc.wait()
        detail = line[6:] if line.startswith("ERROR ") else f"see {log_path}"
        print(f"raylite start: the daemon did not start: {detail}", file=sys.stderr)
        return 1
    _, address, session = line.split()
    with open(os.path.join(session, "token")) as f:
        token = f.read().strip()
    if args.head:
        print(f"raylite head started at {address} (pid {proc.pid}).\n"
              f"  Connect from this machine:  raylite.init(address=\"auto\")  or  "
              f"raylite.init(address=\"{address}\")\n"
              f"  Add a node:                 raylite start --address {address}\n"
              f"  From another machine:       RAYLITE_CLUSTER_TOKEN={token} (start the head with "
              "--host 0.0.0.0)\n"
              "  Stop it:                    raylite stop")
    else:
        print(f"raylite node started at {address} (pid {proc.pid}) and joined {args.address}. "
              "Its resources count in cluster_resources(); scheduling work onto it is not "
              "supported yet (tasks run on the head node).")
    if args.block:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            return proc.wait()
    return 0


def _stop_pid(pid: int, force: bool) -> bool:
    """SIGTERM (SIGKILL with --force), wait up to 5 s, then SIGKILL. True when it is gone."""
    try:
        os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0
        if done or not _alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return False


def cmd_stop(args: argparse.Namespace) -> int:
    temp = _temp_dir(args)
    stopped = 0
    for path, (address, pid, _) in _node_records(temp):
        if _alive(pid):
            _stop_pid(pid, args.force)
            print(f"stopped node {address} (pid {pid})")
            stopped += 1
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    head_path = os.path.join(temp, "raylite_current_cluster")
    rec = _read_record(head_path)
    if rec and _alive(rec[1]):
        _stop_pid(rec[1], args.force)
        print(f"stopped head {rec[0]} (pid {rec[1]})")
        stopped += 1
    try:
        os.unlink(head_path)
    except FileNotFoundError:
        pass
    if not stopped:
        print("no running raylite cluster was started here")
    return 0


def _connect(args: argparse.Namespace):
    from raylite._protocol.transport import connect
    from raylite._runtime.cluster_start import token_for

    temp = _temp_dir(args)
    address = args.address
    if address is None:
        rec = _head_record(temp)
        if rec is None:
            return None, None
        address = rec[0]
    return connect(address, token_for(address, temp)), address


def _ask(args: argparse.Namespace, msg) -> object:
    try:
        conn, address = _connect(args)
    except ConnectionError as e:
        print(f"raylite: {e}", file=sys.stderr)
        return None
    if conn is None:
        print("no running raylite cluster here: start one with `raylite start --head`",
              file=sys.stderr)
        return None
    try:
        conn.send(msg)
        return conn.recv()
    finally:
        conn.close()


def _fmt(name: str, v: float) -> str:
    if name in ("memory", "object_store_memory"):
        return f"{v / 2**30:.2f} GiB"
    return f"{v:g}"


def cmd_status(args: argparse.Namespace) -> int:
    from raylite._protocol import messages as m

    state = _ask(args, m.GetClusterState(1))
    if state is None:
        return 1
    node, gcs, store = state.stats["node"], state.stats["gcs"], state.stats["store"]
    print(f"nodes ({sum(1 for n in state.nodes if n['Alive'])} alive)")
    for n in state.nodes:
        role = "head" if n.get("IsHead") else "node"
        print(f"  {n['NodeID'][:12]}  {role}  {n['NodeManagerHostname']}  "
              f"{'alive' if n['Alive'] else 'dead'}")
    print("resources (used / total)")
    for k in sorted(state.total):
        if k.startswith("node:"):
            continue
        used = state.total[k] - state.available.get(k, state.total[k])
        print(f"  {k:<22s} {_fmt(k, max(used, 0)):>12s} / {_fmt(k, state.total[k])}")
    print(f"workers: {node['workers']} ({node['idle_workers']} idle, {node['leases']} leased, "
          f"{node['actor_workers']} hosting actors, {node['starting_workers']} starting)")
    print(f"actors: {gcs['actors'] or 'none'}; drivers: {state.stats['drivers']}")
    print(f"pending lease requests: {node['pending_requests']}"
          + (f" {node['pending_demands']}" if node['pending_demands'] else ""))
    print(f"object store: {store['used'] / 2**20:.1f} / {store['capacity'] / 2**20:.1f} MiB in "
          f"shared memory, {store['spilled_bytes'] / 2**20:.1f} MiB spilled, "
          f"{store['objects']} objects")
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    from raylite._protocol import messages as m

    report = _ask(args, m.MemoryReport(1))
    if report is None:
        return 1
    print(f"{'object id':<34s} {'size':>12s} {'where':<8s} {'owner':<22s} refs")
    total = 0
    for proc in report.processes:
        for o in proc.objects:
            if not o["owned"]:
                continue
            where = o["where"]
            if where == "shm":
                seg = next((s for s in report.segments if s["object_id"] == o["object_id"]), None)
                where = seg["where"] if seg else "shm"
            kinds = [f"local={o['local_refs']}"] + ([f"borrowers={o['borrowers']}"] if o["borrowers"] else []) \
                + (["pinned"] if o["pinned"] else [])
            print(f"{o['object_id']:<34s} {o['size']:>12,d} {where:<8s} "
                  f"{proc.kind + ' ' + proc.address:<22s} {' '.join(kinds)}")
            total += o["size"]
    s = report.store
    print(f"\ntotal held by owners: {total / 2**20:.1f} MiB; node store: "
          f"{s['used'] / 2**20:.1f} MiB in shared memory ({s['objects_in_shm']} objects), "
          f"{s['spilled_bytes'] / 2**20:.1f} MiB spilled ({s['objects_spilled']} objects), "
          f"capacity {s['capacity'] / 2**20:.1f} MiB")
    return 0


def cmd_microbenchmark(args: argparse.Namespace) -> int:
    from .microbenchmark import run

    run(window=args.window, rounds=args.rounds, num_cpus=args.num_cpus, only=args.only)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="raylite", description="raylite cluster commands")
    sub = ap.add_subparsers(dest="command", required=True)

    st = sub.add_parser("start", help="start a head, or a node that joins one")
    st.add_argument("--head", action="store_true", help="start the head (GCS + this node)")
    st.add_argument("--address", help="HOST:PORT of the head to join as a node")
    st.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 for all)")
    st.add_argument("--port", type=int, default=None, help="port (head default 6380)")
    st.add_argument("--num-cpus", type=float)
    st.add_argument("--num-gpus", type=float)
    st.add_argument("--resources", help='custom resources as JSON, e.g. \'{"custom": 2}\'')
    st.add_argument("--object-store-memory", type=int)
    st.add_argument("--temp-dir")
    st.add_argument("--block", action="store_true", help="stay in the foreground")
    st.set_defaults(func=cmd_start)

    sp = sub.add_parser("stop", help="stop what `raylite start` started on this machine")
    sp.add_argument("--force", action="store_true", help="SIGKILL at once")
    sp.add_argument("--temp-dir")
    sp.set_defaults(func=cmd_stop)

    for name, func, text in (("status", cmd_status, "nodes, resources, workers, actors"),
                             ("memory", cmd_memory, "live objects and the object store")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--address", help="HOST:PORT (default: the cluster started here)")
        p.add_argument("--temp-dir")
        p.set_defaults(func=func)

    mb = sub.add_parser("microbenchmark", help="time raylite's core operations")
    mb.add_argument("--window", type=float, default=1.0, help="seconds per measurement")
    mb.add_argument("--rounds", type=int, default=3)
    mb.add_argument("--num-cpus", type=int)
    mb.add_argument("--only", help="run only the cases whose name contains this text")
    mb.set_defaults(func=cmd_microbenchmark)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "port", 1) is None:
        args.port = 6380 if args.head else 0
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
