"""`raylite status` and `raylite memory`: ask a running cluster what it holds.

    recorded head (else a node here that joined one, or --address) + its token ─► connect ─► GetState(req, kinds, owners)
                                                       ◄─ StateReply(req, snapshot, missing)

Every number printed here is read from the snapshot's frozen records (_core/records.py),
which the daemon's cores and the owners produce; this module only counts and formats
them. `status` asks the daemon's cores only (quick: no owner is asked); `memory` also
asks every driver and worker for the objects it owns, and names those that did not
answer in time. `status --metrics` also asks for the user metrics the GCS holds
(GetMetrics). Exit code 1 when no cluster answers.
"""
from __future__ import annotations

import argparse
import sys

from . import _records as rec

REPLY_TIMEOUT_S = 10.0
STATUS_KINDS = ("nodes", "jobs", "workers", "leases", "actors", "objects")  # no tasks: no owner is asked
WHERE = {"INLINE": "inline", "SHARED_MEMORY": "shm", "SPILLED": "spilled", "PENDING": "pending",
         "ERROR": "error"}


class _NoCluster(Exception):
    pass


def _ask(args: argparse.Namespace, msg) -> tuple[object, str]:
    from raylite._protocol.transport import connect

    temp = rec.temp_dir(args.temp_dir)
    address = args.address
    if address in (None, "auto"):
        head = rec.live_head(temp) or next(
            (n for n in rec.nodes(temp) if rec.is_daemon(n.pid)), None)  # a node that joined one
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


def format_status(snap, address: str) -> str:
    alive = [n for n in snap.nodes if n.alive]
    lines = [f"raylite cluster at {address}", f"nodes ({len(alive)} alive)"]
    for n in sorted(snap.nodes, key=lambda n: (not n.is_head, n.node_id)):
        res = n.resources_total
        lines.append(f"  {n.node_id[:12]}  {'head' if n.is_head else 'node'}  "
                     f"{(n.address or '').rpartition(':')[0]:<15s} {n.hostname or '':<20s} "
                     f"{'alive' if n.alive else 'dead':<5s}  CPU {res.get('CPU', 0):g}"
                     + (f", GPU {res['GPU']:g}" if res.get("GPU") else ""))
    total, free = _sum(alive, "resources_total"), _sum(alive, "resources_available")
    lines.append("resources (used / total)")
    for k in sorted(total):
        if not k.startswith("node:"):
            used = max(total[k] - free.get(k, total[k]), 0)
            lines.append(f"  {k:<22s} {_fmt(k, used):>12s} / {_fmt(k, total[k])}")
    for n in sorted(snap.nodes, key=lambda n: (not n.is_head, n.node_id)):
        states = [w.state for w in snap.workers if w.node_id == n.node_id]
        if states:
            c = {s: states.count(s) for s in ("IDLE", "LEASED", "ACTOR", "STARTING")}
            lines.append(f"workers ({'head node' if n.is_head else 'node ' + n.node_id[:12]}): "
                         f"{c['IDLE'] + c['LEASED'] + c['ACTOR']} ({c['IDLE']} idle, "
                         f"{c['LEASED']} leased, {c['ACTOR']} hosting actors, "
                         f"{c['STARTING']} starting)")
    by_state: dict = {}
    for a in snap.actors:
        by_state[a.state] = by_state.get(a.state, 0) + 1
    named = sum(1 for a in snap.actors if a.name and a.state != "DEAD")
    lines.append(f"actors: {_counts(by_state)}" + (f" ({named} named)" if named else ""))
    lines.append(f"drivers: {sum(1 for j in snap.jobs if j.alive)}")
    demands = [x.demand for x in snap.leases if x.state == "PENDING"]
    lines.append(f"pending lease requests: {len(demands)}"
                 + (": " + ", ".join(_demand(d) for d in demands[:10]) if demands else "")
                 + (f" and {len(demands) - 10} more" if len(demands) > 10 else ""))
    shm, spilled = _stored(snap, "SHARED_MEMORY"), _stored(snap, "SPILLED")
    lines.append(f"object store: {_mib(sum(shm))} / {_mib(total.get('object_store_memory', 0))} "
                 f"MiB in shared memory, {_mib(sum(spilled))} MiB spilled, "
                 f"{len(shm) + len(spilled)} objects")
    lines += format_spilling(snap.nodes)
    return "\n".join(lines)


def format_spilling(nodes) -> list[str]:
    from raylite._core.records import spill_lines

    return spill_lines(nodes)


def format_memory(snap, missing: tuple) -> str:
    lines = [f"{'object id':<34s} {'size':>12s} {'where':<8s} {'owner':<22s} refs"]
    held = 0
    for o in snap.objects:
        if o.state == "BORROWED":
            continue
        refs = "unknown (its owner did not answer)" if o.local_refs is None else \
            f"local={o.local_refs}" + (f" borrowers={o.borrowers}" if o.borrowers else "")
        size = "-" if o.size is None else f"{o.size:,d}"
        nodes = f" nodes={','.join(o.nodes)}" if o.nodes else ""  # every copy (owner's directory)
        lines.append(f"{o.object_id:<34s} {size:>12s} {WHERE.get(o.state, o.state):<8s} "
                     f"{o.owner or '?':<22s} {refs}{nodes}")
        held += o.size or 0
    shm, spilled = _stored(snap, "SHARED_MEMORY"), _stored(snap, "SPILLED")
    capacity = _sum([n for n in snap.nodes if n.alive], "resources_total").get("object_store_memory", 0)
    lines.append(f"\ntotal held by owners: {_mib(held)} MiB; object store: {_mib(sum(shm))} MiB in "
                 f"shared memory ({len(shm)} objects), {_mib(sum(spilled))} MiB spilled "
                 f"({len(spilled)} objects), capacity {_mib(capacity)} MiB")
    if missing:
        lines.append(f"no answer in time from {', '.join(missing)}: what they own is not listed")
    return "\n".join(lines)


def _sum(nodes, field: str) -> dict:
    out: dict = {}
    for n in nodes:
        for k, v in getattr(n, field).items():
            out[k] = out.get(k, 0.0) + v
    return out


def _stored(snap, state: str) -> list:
    """Sizes of the objects in `state` (the store's word, overlaid on their owners')."""
    return [o.size or 0 for o in snap.objects if o.state == state]


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def _demand(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {_fmt(k, v)}" for k, v in sorted(d.items())) + "}"


def run_status(args: argparse.Namespace) -> int:
    from raylite._protocol import messages as m

    try:
        reply, address = _ask(args, m.GetState(1, STATUS_KINDS, False))
    except _NoCluster as e:
        print(f"raylite status: {e}", file=sys.stderr)
        return 1
    print(format_status(reply.snapshot, address))
    if getattr(args, "metrics", False):
        try:
            metrics, _ = _ask(args, m.GetMetrics(1))
        except _NoCluster as e:
            print(f"raylite status: {e}", file=sys.stderr)
            return 1
        print(format_metrics(metrics.series, metrics.dropped))
    return 0


def format_metrics(series: tuple, dropped: int) -> str:
    """The user metrics: one line per series (a histogram: its count, sum and mean)."""
    lines = [f"metrics ({len(series)} series)"]
    if not series:
        lines.append("  none reported yet (raylite.util.metrics: Counter, Gauge, Histogram)")
    rows = [("NAME", "KIND", "TAGS", "VALUE")]
    for s in series:
        tags = ",".join(f"{k}={v}" for k, v in s.tags) or "-"
        if s.kind == "histogram":
            mean = f", mean {s.value / s.count:g}" if s.count else ""
            value = f"count {s.count}, sum {s.value:g}{mean}"
        else:
            value = f"{s.value:g}"
        rows.append((s.name, s.kind, tags, value))
    if series:
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3]
                  for r in rows]
    if dropped:
        lines.append(f"  {dropped} reports were dropped (more than 10,000 series, or a name "
                     "used with two kinds or two sets of boundaries)")
    return "\n".join(lines)


def run_memory(args: argparse.Namespace) -> int:
    from raylite._protocol import messages as m

    try:
        reply, _ = _ask(args, m.GetState(1, ("nodes", "objects"), True))
    except _NoCluster as e:
        print(f"raylite memory: {e}", file=sys.stderr)
        return 1
    print(format_memory(reply.snapshot, reply.missing))
    return 0
