"""`raylite status` and `raylite memory`: ask a running cluster what it holds.

    recorded head (or --address) + its token ─► connect ─► GetClusterState(req)
                                                       ◄─ ClusterState(req, nodes, total, available, stats)
                                             ─► MemoryReport(req) ◄─ MemorySummary(...)

The daemons' pure cores produce the numbers (`statistics()`); this module only
formats them. Exit code 1 when no cluster answers.
"""
from __future__ import annotations

import argparse
import sys

from . import _records as rec

REPLY_TIMEOUT_S = 10.0


class _NoCluster(Exception):
    pass


def _ask(args: argparse.Namespace, msg) -> tuple[object, str]:
    from raylite._protocol.transport import connect

    temp = rec.temp_dir(args.temp_dir)
    address = args.address
    if address is None:
        head = rec.live_head(temp)
        if head is None:
            raise _NoCluster(f"no running raylite cluster here (temp dir {temp}): start one with "
                             "`raylite start --head`, or pass --address HOST:PORT.")
        address = head.address
    try:
        conn = connect(address, rec.find_token(address, temp))
    except (ConnectionError, ValueError) as e:
        raise _NoCluster(str(e)) from None
    try:
        conn.sock.settimeout(REPLY_TIMEOUT_S)
        conn.send(msg)
        return conn.recv(), address
    except (EOFError, OSError) as e:
        raise _NoCluster(f"the cluster at {address} did not answer: {e}") from None
    finally:
        conn.close()


def _fmt(name: str, v: float) -> str:
    if name in ("memory", "object_store_memory"):
        return f"{v / 2**30:.2f} GiB"
    return f"{v:g}"


def _counts(d: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(d.items())) or "none"


def format_status(state, address: str) -> str:
    node, gcs, store = state.stats["node"], state.stats["gcs"], state.stats["store"]
    alive = sum(1 for n in state.nodes if n["Alive"])
    lines = [f"raylite cluster at {address}", f"nodes ({alive} alive)"]
    for n in sorted(state.nodes, key=lambda n: (not n.get("IsHead"), n["NodeID"])):
        res = n.get("Resources", {})
        lines.append(f"  {n['NodeID'][:12]}  {'head' if n.get('IsHead') else 'node'}  "
                     f"{n['NodeManagerAddress']:<15s} {n['NodeManagerHostname']:<20s} "
                     f"{'alive' if n['Alive'] else 'dead':<5s}  CPU {res.get('CPU', 0):g}"
                     + (f", GPU {res['GPU']:g}" if res.get("GPU") else ""))
    lines.append("resources (used / total)")
    for k in sorted(state.total):
        if k.startswith("node:"):
            continue
        used = max(state.total[k] - state.available.get(k, state.total[k]), 0)
        lines.append(f"  {k:<22s} {_fmt(k, used):>12s} / {_fmt(k, state.total[k])}")
    lines.append(f"workers (head node): {node['workers']} ({node['idle_workers']} idle, "
                 f"{node['leases']} leased, {node['actor_workers']} hosting actors, "
                 f"{node['starting_workers']} starting)")
    lines.append(f"actors: {_counts(gcs['actors'])}"
                 + (f" ({gcs['named_actors']} named)" if gcs.get("named_actors") else ""))
    lines.append(f"drivers: {state.stats['drivers']}")
    demands = node["pending_demands"]
    lines.append(f"pending lease requests: {node['pending_requests']}"
                 + (": " + ", ".join(_demand(d) for d in demands[:10]) if demands else "")
                 + (f" and {len(demands) - 10} more" if len(demands) > 10 else ""))
    lines.append(f"object store: {store['used'] / 2**20:.1f} / {store['capacity'] / 2**20:.1f} MiB "
                 f"in shared memory, {store['spilled_bytes'] / 2**20:.1f} MiB spilled, "
                 f"{store['objects']} objects")
    return "\n".join(lines)


def _demand(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {_fmt(k, v)}" for k, v in sorted(d.items())) + "}"


def run_status(args: argparse.Namespace) -> int:
    from raylite._protocol import messages as m

    try:
        state, address = _ask(args, m.GetClusterState(1))
    except _NoCluster as e:
        print(f"raylite status: {e}", file=sys.stderr)
        return 1
    print(format_status(state, address))
    return 0


def run_memory(args: argparse.Namespace) -> int:
    from raylite._protocol import messages as m

    try:
        report, _ = _ask(args, m.MemoryReport(1))
    except _NoCluster as e:
        print(f"raylite memory: {e}", file=sys.stderr)
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
            kinds = [f"local={o['local_refs']}"] + \
                ([f"borrowers={o['borrowers']}"] if o["borrowers"] else []) + \
                (["pinned"] if o["pinned"] else [])
            print(f"{o['object_id']:<34s} {o['size']:>12,d} {where:<8s} "
                  f"{proc.kind + ' ' + proc.address:<22s} {' '.join(kinds)}")
            total += o["size"]
    s = report.store
    print(f"\ntotal held by owners: {total / 2**20:.1f} MiB; node store: "
          f"{s['used'] / 2**20:.1f} MiB in shared memory ({s['objects_in_shm']} objects), "
          f"{s['spilled_bytes'] / 2**20:.1f} MiB spilled ({s['objects_spilled']} objects), "
          f"capacity {s['capacity'] / 2**20:.1f} MiB")
    return 0
