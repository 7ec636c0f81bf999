"""`raylite run script.py [args]`: runs a Ray program, unchanged, on raylite.

    install the ray -> raylite alias (_ray_alias) ─► sys.argv = [script, *args],
    sys.path[0] = the script's directory (as `python script.py` does)
    ─► runpy: the script runs as __main__ ─► its exit code is ours

`python -m`'s form works too: `raylite run -m package.module [args]`. The alias
lives in this process only, and in the workers of a cluster its init() starts
(RAYLITE_RAY_ALIAS=1 reaches them through the environment): there a module of
the program that does `import ray`, imported because a task uses something of
it, loads too. Workers of a cluster started apart (`raylite start`) have the
alias only if that start ran with RAYLITE_RAY_ALIAS=1. A program that imports
raylite is never affected.
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import Any


def run(args: Any) -> int:
    from .._ray_alias import install

    target = args.module or args.script
    if target is None:
        print("raylite run: name a script (raylite run script.py [args]) or a module "
              "(raylite run -m module [args]).", file=sys.stderr)
        return 2
    if args.module is None and not os.path.exists(target):
        print(f"raylite run: {target}: no such file.", file=sys.stderr)
        return 2
    install()
    argv = [target, *args.args]
    if args.module is not None:
        if args.script is not None:  # `-m mod a b`: argparse took `a` as the script
            argv.insert(1, args.script)
        sys.argv = argv
        sys.path.insert(0, os.getcwd())
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    return 0
