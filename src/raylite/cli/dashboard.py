"""`raylite dashboard`: serve the read-only web dashboard of a running cluster, in the
foreground, in this process (Ctrl-C ends it).

    flags checked (exit 2) ─► the cluster found as `raylite status` finds it (exit 1 if none)
        ─► raylite.dashboard.server.run ─► "READY <login URL>" ─► printed as the one-time
           login link ─► serves until Ctrl-C or SIGTERM

`raylite start --head --dashboard-port P` starts the same server beside the head, in
its own process, and `raylite stop` stops it (cli/start.py, cli/stop.py).
"""
from __future__ import annotations

import argparse
import sys


class _Banner:
    """Turns the server's READY line into what a person reads."""

    def write(self, text: str) -> None:
        if text.startswith("READY "):
            urls = text.split()[1:]
            lines = []
            for url in urls:
                if "/login" in url:
                    base = url.partition("/login")[0]
                    lines += [f"raylite dashboard at {base}",
                              f"  Log in (this link works once):  {url}",
                              f"  Later logins: {base}/login with the cluster token"]
                else:
                    lines += [f"raylite metrics at {url}",
                              "  Scrape with the header  Authorization: Bearer <cluster token>"]
            text = "\n".join(lines + ["  Stop it: Ctrl-C", ""])
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from raylite.dashboard.__main__ import check
    from raylite.dashboard.reader import ClusterUnavailable
    from raylite.dashboard.server import run as serve

    from . import _records as rec

    why = check(args)
    if why is not None:
        print(f"raylite dashboard: {why}", file=sys.stderr)
        return 2
    try:
        return serve(args.address, rec.temp_dir(args.temp_dir), args.host,
                     None if args.metrics_only else args.port, args.interval, None, False,
                     out=_Banner(), metrics_port=args.metrics_port)
    except ClusterUnavailable as e:
        print(f"raylite dashboard: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"raylite dashboard: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
