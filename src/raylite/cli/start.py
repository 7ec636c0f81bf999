"""`raylite start --head | --address HOST:PORT`: run a node daemon that outlives this command.

    validate the flags (exit 2) ─► make or check <temp> (ours, 0700)
       ─► lock <temp>/raylite_start.lock
       ─► --head: refuse if the recorded head is alive (exit 1)
          --address: find the cluster token (RAYLITE_CLUSTER_TOKEN, else this machine's
                     session of that head), handed to the daemon in its environment
       ─► python -m raylite._node.main --record | --address HOST:PORT ...
              its own session (so this command can exit, and `stop` can signal its group),
              stdin /dev/null, stderr appended to <temp>/raylite_{head,node}.log, which
              the daemon rotates (--log-file): at RAYLITE_ROTATION_MAX_BYTES (10 MiB) it
              becomes .log.1 (.1 becomes .2, ...), RAYLITE_ROTATION_BACKUP_COUNT (2) kept
       ◄─ "READY <address> <session dir>" (or "ERROR <why>") on its stdout
       ─► print how to connect and stop; --block: wait in the foreground until
          Ctrl-C or SIGTERM, then stop the daemon as `raylite stop` would.

A head also listens on Ray's client port (--ray-client-server-port, default 10001, on
the same interface as --port), so a driver given "ray://HOST:10001" joins it: the same
daemon, handshake and token, one more port. Given explicitly, a port that cannot be
bound fails the start; the default one, when taken, is skipped with a warning in the
banner (node.json's "client_error").

With --head --dashboard-port P, the web dashboard (raylite.dashboard) is launched
beside the head in its own session (`python -m raylite.dashboard --record --head-pid
PID`, stderr appended to <temp>/raylite_dashboard.log); its first stdout line
"READY <one-time login URL>" is printed in the banner. It records itself in
<temp>/raylite_dashboard for `raylite stop`, and ends by itself once the head is gone.
With --metrics-export-port M the same process also serves Prometheus metrics on
127.0.0.1:M/metrics (only that, without --dashboard-port), for the cluster token as a
bearer token (raylite.dashboard.metrics).

A joined node runs the tasks its drivers submit while they fit there, the tasks other
nodes spill to it (busy, or it has what they need) or send by strategy, and the
actors the GCS places there (_node/spillback.py, _gcs/placement.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import subprocess
import sys
import time

from raylite import _private_files as private

from . import _records as rec

START_TIMEOUT_S = 30.0
RAY_CLIENT_PORT = 10001  # Ray's default --ray-client-server-port
_WILDCARD = ("0.0.0.0", "::", "")


class _Usage(Exception):
    """A bad flag: exit code 2."""


class _Refused(Exception):
    """The flags are fine but starting is not possible: exit code 1."""


def _check_flags(args: argparse.Namespace) -> None:
    if not args.head and not args.address:
        raise _Usage("pass --head to start a head, or --address HOST:PORT to join one.")
    for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus)):
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise _Usage(f"{flag} must be a number >= 0, got {value}.")
    if args.object_store_memory is not None and args.object_store_memory <= 0:
        raise _Usage(f"--object-store-memory must be a number of bytes > 0, got "
                     f"{args.object_store_memory}.")
    if not 0 <= args.port <= 65535:
        raise _Usage(f"--port must be 0..65535, got {args.port}.")
    if args.address:
        host, sep, port = args.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise _Usage(f"--address must be the head's HOST:PORT (as `raylite start --head` "
                         f"printed it), got {args.address!r}.")
    if args.resources is not None:
        _check_resources(args.resources)
    client_port = getattr(args, "ray_client_server_port", None)
    if client_port is not None:
        if not args.head:
            raise _Usage("--ray-client-server-port goes with --head (drivers given ray://HOST:P "
                         "join the head).")
        if not 0 <= client_port <= 65535:
            raise _Usage(f"--ray-client-server-port must be 0..65535, got {client_port}.")
    for flag, port in (("--dashboard-port", getattr(args, "dashboard_port", None)),
                       ("--metrics-export-port", getattr(args, "metrics_export_port", None))):
        if port is None:
            continue
        if not args.head:
            raise _Usage(f"{flag} goes with --head (it is served beside the head); for a "
                         "running cluster use `raylite dashboard`.")
        if not 0 <= port <= 65535:
            raise _Usage(f"{flag} must be 0..65535, got {port}.")


def _check_resources(text: str) -> None:
    example = 'example: --resources \'{"accelerator": 2, "disk": 1}\''
    try:
        res = json.loads(text)
    except ValueError as e:
        raise _Usage(f"--resources is not valid JSON ({e}); {example}") from None
    if not isinstance(res, dict):
        raise _Usage(f"--resources must be a JSON object of name -> amount; {example}")
    for name, amount in res.items():
        if name in ("CPU", "GPU"):
            raise _Usage(f"--resources must not set {name}: use --num-{name.lower()}s.")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or \
                not (amount >= 0 and math.isfinite(amount)):
            raise _Usage(f"--resources: {name!r} must be a number >= 0, got {amount!r}; {example}")


def _env_token() -> str | None:
    value = os.environ.get("RAYLITE_CLUSTER_TOKEN")
    if value:
        try:
            bytes.fromhex(value)
        except ValueError:
            raise _Usage("RAYLITE_CLUSTER_TOKEN is set but is not a hex token: use the one "
                         "`raylite start --head` printed, or unset it.") from None
    return value or None


def _join_token(address: str, temp: str) -> str:
    try:
        return rec.find_token(address, temp).hex()
    except ConnectionError as e:
        raise _Refused(str(e)) from None


def _daemon_cmd(args: argparse.Namespace, temp: str, log_path: str) -> list[str]:
    cmd = [sys.executable, "-m", "raylite._node.main", "--temp-dir", temp,
           "--port", str(args.port)] + ([] if args.block else ["--log-file", log_path])
    for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus),
                        ("--object-store-memory", args.object_store_memory),
                        ("--resources", args.resources), ("--host", args.host),
                        ("--node-ip-address", args.node_ip_address), ("--labels", args.labels)):
        if value is not None:
            cmd += [flag, str(value)]
    if not args.head:
        return cmd + ["--address", args.address]
    given = getattr(args, "ray_client_server_port", None)
    cmd += ["--record", "--client-port", str(RAY_CLIENT_PORT if given is None else given)]
    return cmd + (["--client-port-required"] if given is not None else [])


def _launch(cmd: list[str], env: dict, log_path: str, block: bool,
            what: str) -> tuple[subprocess.Popen, str]:
    """Starts the daemon; returns it and its first stdout line ('' if none in time). After a
    second, a waiting line on stderr says what it waits for (`what`)."""
    fd = private.open_file(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                stderr=None if block else log, env=env, start_new_session=True)
    from ._progress import Waiting

    waiting = Waiting(f"raylite start: waiting for {what} (up to {START_TIMEOUT_S:g} s)")
    deadline = time.monotonic() + START_TIMEOUT_S
    ready: list = []
    while not ready and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], min(0.25, deadline - time.monotonic()))
        waiting.tick()
    waiting.done()
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    proc.stdout.close()
    return proc, line


def _failure(proc: subprocess.Popen, line: str, log_path: str, log_from: int, block: bool) -> str:
    try:  # after "ERROR" it removes its record and session dir, then exits
        proc.wait(timeout=10 if line.startswith("ERROR ") else 0.5)
    except subprocess.TimeoutExpired:  # no READY in time: it is stuck
        rec.signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    if line.startswith("ERROR "):
        return line[6:]
    detail = f"no READY within {START_TIMEOUT_S:g} s" if proc.returncode == -signal.SIGKILL \
        else f"exit code {proc.returncode}"
    if block:
        return f"{detail}; its output is above"
    try:
        with os.fdopen(private.open_file(log_path), "rb") as f:
            f.seek(log_from)
            tail = f.read().decode(errors="replace").strip().splitlines()[-5:]
    except OSError:
        tail = []
    return f"{detail}; the end of {log_path}:\n    " + "\n    ".join(tail) if tail else \
        f"{detail}; see {log_path}"


def _start(args: argparse.Namespace, temp: str) -> tuple[subprocess.Popen, str, str]:
    """Starts the daemon under the start lock; returns (process, address, session dir)."""
    import fcntl

    private.make_dir(temp)
    env = dict(os.environ)
    token = _env_token()
    if args.address and token is None:
        token = _join_token(args.address, temp)
    if token is not None:
        env["RAYLITE_CLUSTER_TOKEN"] = token  # in the environment, never on a command line
    log_path = os.path.join(temp, "raylite_head.log" if args.head else "raylite_node.log")
    lock_fd = private.open_file(os.path.join(temp, "raylite_start.lock"), os.O_WRONLY | os.O_CREAT)
    with os.fdopen(lock_fd, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one check-then-start at a time per temp dir
        running = rec.live_head(temp) if args.head else None
        if running is not None:
            raise _Refused(f"a head is already running here at {running.address} (pid "
                           f"{running.pid}). Stop it first with `raylite stop` (temp dir {temp}), "
                           "or connect to it with raylite.init(address=\"auto\").")
        log_from = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        what = "the head daemon" if args.head else f"the node daemon to join {args.address}"
        proc, line = _launch(_daemon_cmd(args, temp, log_path), env, log_path, args.block, what)
    if not line.startswith("READY "):
        raise _Refused("the daemon did not start: " + _failure(proc, line, log_path, log_from,
                                                                 args.block))
    _, address, session_dir = line.split(maxsplit=2)
    return proc, address, session_dir


def _routable_ip() -> str:
    """Best guess at this machine's address for other machines (a UDP connect sends nothing)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 9))
            return s.getsockname()[0]
    except OSError:
        return "<this machine's IP>"


def _client_line(session_dir: str) -> str:
    """The banner's line on Ray's client port, from the head's node.json."""
    try:
        node = json.loads(private.read_text(os.path.join(session_dir, "node.json")) or "{}")
    except (OSError, ValueError):
        node = {}
    if node.get("client_address"):
        return f"raylite.init(address=\"ray://{node['client_address']}\")"
    return f"none: {node.get('client_error', 'not recorded')}"


def _banner(args: argparse.Namespace, proc: subprocess.Popen, address: str, token: str,
            session_dir: str) -> str:
    stop = "Ctrl-C (or SIGTERM to pid {})".format(os.getpid()) if args.block else "raylite stop" + (
        f" --temp-dir {args.temp_dir}" if args.temp_dir else "")
    if not args.head:
        return (f"raylite node started at {address} (pid {proc.pid}) and joined {args.address}.\n"
                "  Tasks run there when their driver's node is busy or lacks what they need, or\n"
                "  by scheduling strategy; actors when the GCS places them there.\n"
                f"  Stop it:  {stop}  (stops every raylite process started here)")
    host, _, port = address.rpartition(":")
    if args.host in _WILDCARD:  # the daemon names its address on the way to other machines
        remote = address if host not in ("127.0.0.1", *_WILDCARD) else f"{_routable_ip()}:{port}"
        other = (f"RAYLITE_CLUSTER_TOKEN={token} raylite start --address {remote}")
    else:
        other = (f"listens on {host} only; to accept other machines start it with "
                 f"--host 0.0.0.0, then join with RAYLITE_CLUSTER_TOKEN={token}")
    return (f"raylite head started at {address} (pid {proc.pid}).\n"
            f"  Connect from this machine:  raylite.init(address=\"auto\")  or  "
            f"raylite.init(address=\"{address}\")\n"
            f"  Ray client address:         {_client_line(session_dir)}\n"
            f"  Add a node here:            raylite start --address {address}\n"
            f"  From another machine:       {other}\n"
            f"  Cluster token:              RAYLITE_CLUSTER_TOKEN={token}\n"
            f"  Status:                     raylite status\n"
            f"  Stop it:                    {stop}")


def _start_dashboard(args: argparse.Namespace, temp: str, address: str,
                     head_pid: int) -> list[str]:
    """Launches the dashboard (and/or the metrics endpoint) beside the head, in one process;
    its URLs (the one-time login URL, the metrics URL), or _Refused."""
    log_path = os.path.join(temp, "raylite_dashboard.log")
    cmd = [sys.executable, "-m", "raylite.dashboard", "--address", address, "--temp-dir", temp,
           "--head-pid", str(head_pid), "--record"]
    if args.dashboard_port is not None:
        cmd += ["--port", str(args.dashboard_port)]
    if args.metrics_export_port is not None:
        cmd += ["--metrics-port", str(args.metrics_export_port)]
        if args.dashboard_port is None:
            cmd.append("--metrics-only")
    proc, line = _launch(cmd, dict(os.environ), log_path, block=False,
                         what="the dashboard" if args.dashboard_port is not None else
                         "the metrics endpoint")
    if line.startswith("READY "):
        return line.split()[1:]
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rec.signal_pid(proc.pid, signal.SIGKILL)
        proc.wait()
    why = line[6:] if line.startswith("ERROR ") else f"no READY (exit code {proc.returncode}); " \
        f"see {log_path}"
    raise _Refused(f"the head is running at {address}, but the dashboard did not start: {why}")


class _Signalled(Exception):
    pass


def _raise(*_) -> None:
    raise _Signalled


def _block(proc: subprocess.Popen, address: str, session_dir: str, kind: str, temp: str) -> int:
    """Waits in the foreground; Ctrl-C, SIGTERM or SIGHUP stop the daemon as `raylite stop` does."""
    from .stop import stop_dashboard, stop_records

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a `&` job ignores it
        signal.signal(sig, _raise)
    try:
        return proc.wait()
    except _Signalled:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        path = os.path.join(temp, rec.HEAD_RECORD) if kind == "head" else \
            os.path.join(temp, rec.NODES_DIR, str(proc.pid))
        r = rec.Record(path, address, proc.pid, session_dir, kind)
        said = stop_dashboard(temp) if kind == "head" else None
        _, killed, failed = stop_records([r], force=False)
        if said:
            print(said)
        proc.wait()
        print(f"stopped {kind} {address} (pid {proc.pid})" + (" by SIGKILL" if killed else ""))
        return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    temp = rec.temp_dir(args.temp_dir)
    try:
        _check_flags(args)
        proc, address, session_dir = _start(args, temp)
    except _Usage as e:
        print(f"raylite start: {e}", file=sys.stderr)
        return 2
    except _Refused as e:
        print(f"raylite start: {e}", file=sys.stderr)
        return 1
    try:
        token = (private.read_text(os.path.join(session_dir, "token"), secret=True) or "").strip()
    except OSError:
        token = ""
    token = token or "<see " + os.path.join(session_dir, "token") + ">"
    print(_banner(args, proc, address, token, session_dir), flush=True)
    if args.dashboard_port is not None or args.metrics_export_port is not None:
        try:
            urls = _start_dashboard(args, temp, address, proc.pid)
        except _Refused as e:
            print(f"raylite start: {e}", file=sys.stderr)
            return 1
        for url in urls:
            if "/login" in url:
                print(f"  Dashboard:                  {url.partition('/login')[0]}\n"
                      f"    log in once with          {url}\n"
                      f"    (later: the cluster token at {url.partition('?')[0]})", flush=True)
            else:
                print(f"  Prometheus metrics:         {url}\n"
                      "    scrape with the header    Authorization: Bearer <cluster token>",
                      flush=True)
    if args.block:
        return _block(proc, address, session_dir, "head" if args.head else "node", temp)
    return 0
