"""python -m raylite.dashboard: the dashboard process (`raylite start --head --dashboard-port`
launches it; `raylite dashboard` runs the same in the foreground).

Prints "READY <one-time login URL> [<metrics URL>]" on stdout once it serves (with
--metrics-only: "READY <metrics URL>"), or "ERROR <why>" and exits 1
(no cluster, a port in use, a non-loopback --host without --allow-remote).
"""
from __future__ import annotations

import argparse
import sys


def parser(prog: str = "python -m raylite.dashboard") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Serve raylite's read-only web dashboard "
                                 "for a running cluster (log in with the cluster token).")
    ap.add_argument("--address", metavar="HOST:PORT",
                    help="the cluster's head (default: the one `raylite start` recorded here)")
    ap.add_argument("--temp-dir", help="raylite's temp dir (default $RAYLITE_TEMP_DIR or "
                                       "/tmp/raylite_<uid>)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default 127.0.0.1; any other needs --allow-remote)")
    ap.add_argument("--port", type=int, default=8265, help="port to listen on (default 8265; 0 = any)")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a --host other machines can reach (the token is still required)")
    ap.add_argument("--metrics-port", type=int, metavar="M",
                    help="also serve Prometheus metrics at http://HOST:M/metrics (the cluster "
                         "token as a bearer token)")
    ap.add_argument("--metrics-only", action="store_true",
                    help="serve only the metrics port (no pages); needs --metrics-port")
    ap.add_argument("--interval", type=float, default=5.0,
                    help="seconds between the overview's samples (default 5)")
    ap.add_argument("--head-pid", type=int, help=argparse.SUPPRESS)   # end once it is gone
    ap.add_argument("--record", action="store_true", help=argparse.SUPPRESS)  # for `raylite stop`
    return ap


def check(args: argparse.Namespace) -> str | None:
    """Why these flags cannot serve, or None."""
    from .server import is_loopback

    if not is_loopback(args.host) and not args.allow_remote:
        return (f"--host {args.host} is reachable from other machines: pass --allow-remote as "
                "well to mean it (the cluster token is still required), or keep the default "
                "127.0.0.1.")
    if not 0 <= args.port <= 65535:
        return f"--port must be 0..65535, got {args.port}."
    if getattr(args, "metrics_port", None) is not None and not 0 <= args.metrics_port <= 65535:
        return f"--metrics-port must be 0..65535, got {args.metrics_port}."
    if getattr(args, "metrics_only", False) and getattr(args, "metrics_port", None) is None:
        return "--metrics-only needs --metrics-port M (the port to serve /metrics on)."
    if not args.interval > 0:
        return f"--interval must be > 0 seconds, got {args.interval}."
    return None


def main(argv: list[str] | None = None) -> int:
    from raylite.cli import _records as rec

    from .reader import ClusterUnavailable
    from .server import run

    args = parser().parse_args(argv)
    why = check(args)
    if why is None:
        try:
            return run(args.address, rec.temp_dir(args.temp_dir), args.host,
                       None if args.metrics_only else args.port, args.interval, args.head_pid,
                       args.record, metrics_port=args.metrics_port)
        except ClusterUnavailable as e:
            why = str(e)
        except OSError as e:
            why = f"cannot listen on {args.host}:{args.port}: {e.strerror or e}"
    print(f"ERROR {why}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
