"""The import rules of src/raylite, in one table, each with a test that fails when broken.

    job_submission        built on the public API: may import it and the leaves, nothing inside
        ▼
    public API (__init__, _api, actor, remote_function, runtime_context, util, cli, __main__)
        │ may import anything
        ▼
    _worker ─► _runtime ─┐    _node ─┐    _gcs ─┐
        │                ▼           ▼          │
        └──────────► _object_store ◄─┘          │
                         ▼                      ▼
                     _protocol ◄────────────────┘
                         ▼
                       _core          (pure state machines)
                         ▼
                       leaves         (exceptions, _ids, _config, ...: only each other)

An arrow means "may import", also skipping levels (every layer may import the
leaves). ALLOWED is that picture as data: every top-level name under
src/raylite must be in it, and a new one fails until it is added. A file that
must cross a line is named in EXCEPTIONS with the module it may import and
why; an exception its file no longer uses fails too, so the table stays true.

Imports inside functions are lazy: they count for the layers (a lazy import is
still a dependency). No two modules may import each other while being imported
(that is a cycle Python cannot always finish); a lazy import may break such a
cycle only when it is named in LAZY_CYCLES with the reason, so that two modules
that depend on each other show here. Imports under `if TYPE_CHECKING:` never
run and count for the layers only.
"""
from __future__ import annotations

import ast
import functools
import pathlib
from typing import Iterable, NamedTuple

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "raylite"

LEAVES = frozenset({"exceptions", "_ids", "_forks", "_config", "_serialization", "_private_files",
                    "_options", "_resources", "_session", "_actor_ends", "_ray_alias",
                    "_runtime_env"})
PUBLIC = frozenset({"__init__", "__main__", "_api", "actor", "remote_function",
                    "runtime_context", "util", "cli", "dashboard", "cluster_utils",
                    "experimental"})
_INTERNAL = {
    "_core": LEAVES,
    "_protocol": LEAVES | {"_core"},
    "_object_store": LEAVES | {"_core", "_protocol"},
    "_gcs": LEAVES | {"_core", "_protocol"},
    "_node": LEAVES | {"_core", "_protocol", "_object_store"},
    "_runtime": LEAVES | {"_core", "_protocol", "_object_store"},
    "_worker": LEAVES | {"_core", "_protocol", "_object_store", "_runtime"},
    **{leaf: LEAVES for leaf in LEAVES},
}
# Built on the public API only: may import the public names and the leaves, never the inside.
ON_PUBLIC = frozenset({"job_submission"})
# top-level name under src/raylite -> the top-level names its files may import (besides itself)
ALLOWED: dict[str, frozenset] = {
    **{name: frozenset(may) for name, may in _INTERNAL.items()},
    **{api: frozenset(_INTERNAL) | PUBLIC | ON_PUBLIC for api in PUBLIC},
    **{name: PUBLIC | LEAVES for name in ON_PUBLIC},
}
# file under src/raylite -> {module it may import though its layer may not (with submodules): why}
EXCEPTIONS = {
    "_node/main.py": {"raylite._gcs.service": "the head daemon's process entry composes the GCS "
                                              "service; the two talk only through messages"},
    "_node/worker_pool.py": {"raylite._worker.main": "the fork server preloads what a worker "
                                                     "imports, then runs workers"},
    "_runtime/local.py": {"raylite._gcs.tables": "local mode keeps actor names, restarts and fate "
                                                "sharing in the GCS's pure tables, as a head does"},
    "_runtime/local_groups.py": {"raylite._gcs.groups": "local mode places its placement groups "
                                                        "with the GCS's pure group table (the one "
                                                        "node being this process)"},
    "_runtime/ray_runtime.py": {"raylite.actor": "Ray pickles raylite's actor handles with a "
                                                 "serializer registered for their public classes"},
}
# Optional packages (extras): package -> the only files that may import it (always lazily).
OPTIONAL = {"ray": ("_runtime/ray_runtime.py", "_runtime/ray_errors.py", "_runtime/ray_groups.py",
                    "_runtime/ray_tables.py")}
# (importer, imported) -> why this lazy import closes a cycle of modules instead of one of them
# moving: none today.
LAZY_CYCLES: dict[tuple[str, str], str] = {}
# Pure cores: state machines that take time as an argument and do no I/O.
PURE = ("_core", "_node/scheduler.py", "_node/env_workers.py", "_node/spillback.py",
        "_node/bundles.py", "_node/worker_table.py", "_gcs/tables.py", "_gcs/metrics.py",
        "_gcs/groups.py", "_gcs/health.py", "_object_store/store.py", "_object_store/pulls.py")
PURE_IF_PRESENT = ("_gcs/placement.py", "_gcs/storage.py")
IMPURE = frozenset({"socket", "threading", "select", "selectors", "time", "os"})
MAX_LINES = 500


class Import(NamedTuple):
    module: str   # dotted: "raylite._worker.actor_host", or another package's "os.path"
    when: str     # "import": while its module is imported; "call": inside a function;
                  # "typing": under `if TYPE_CHECKING:`, never


def module_of(rel: tuple) -> str:
    """("_runtime", "local") -> "raylite._runtime.local"; ("_runtime", "__init__") -> "raylite._runtime"."""
    parts = list(rel[:-1]) if rel[-1] == "__init__" else list(rel)
    return ".".join(["raylite", *parts])


def top_of(module: str) -> str:
    """The top-level name under src/raylite of a raylite module ("__init__" for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(parts: list[str]) -> bool:
    p = SRC.joinpath(*parts[1:])
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(node: ast.AST, when: str):
    """(import statement, when it runs) for every import under `node`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _statements(child, "typing" if when == "typing" else "call")
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from _statements(ast.Module(body=child.body, type_ignores=[]), "typing")
            yield from _statements(ast.Module(body=child.orelse, type_ignores=[]), when)
        else:
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, when
            yield from _statements(child, when)


def imports(path: pathlib.Path, rel: tuple) -> list[Import]:
    """Every module the file imports; `rel` is its place under src/raylite (("_node", "server"))."""
    return _parsed(path.read_text(), rel)


@functools.lru_cache(maxsize=None)
def _parsed(text: str, rel: tuple) -> list[Import]:
    here = module_of(rel).split(".")
    package = here if rel[-1] == "__init__" else here[:-1]
    out = []
    for node, when in _statements(ast.parse(text), "import"):
        if isinstance(node, ast.Import):
            out += [Import(a.name, when) for a in node.names]
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
        else:
            target = node.module.split(".")
        if target[0] != "raylite":
            out.append(Import(node.module, when))
            continue
        for a in node.names:  # "from pkg import name": the submodule if there is one
            sub = target + [a.name]
            out.append(Import(".".join(sub if a.name != "*" and _is_module(sub) else target), when))
    return out


def tree() -> list[tuple[tuple, pathlib.Path]]:
    """(rel, path) for every file under src/raylite."""
    return [(p.relative_to(SRC).with_suffix("").parts, p) for p in sorted(SRC.rglob("*.py"))]


def _file(rel: tuple) -> str:
    return "/".join(rel) + ".py"


def _excepted(rel: tuple, module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in EXCEPTIONS.get(_file(rel), {}))


# -- the rules: each returns what breaks it ------------------------------------------------
def unlisted(names: set) -> list[str]:
    return [f"src/raylite/{n} is not in ALLOWED in tests/test_layering.py: add it, with the "
            "layers it may import" for n in sorted(names - set(ALLOWED))] + \
           [f"ALLOWED names {n}, which is not under src/raylite: remove it"
            for n in sorted(set(ALLOWED) - names)]


def crossings(files: Iterable) -> list[str]:
    out = []
    for rel, path in files:
        own = top_of(module_of(rel))
        for imp in imports(path, rel):
            if not imp.module.startswith("raylite"):
                continue
            top = top_of(imp.module)
            if top != own and top not in ALLOWED.get(own, ()) and not _excepted(rel, imp.module):
                out.append(f"src/raylite/{_file(rel)} imports {imp.module}, but {own} may import "
                           f"only {sorted(ALLOWED.get(own, ()))}; if it must, name the file and "
                           "the module in EXCEPTIONS in tests/test_layering.py, with the reason")
    return out


def stale_exceptions(files: Iterable) -> list[str]:
    used = {(_file(rel), m) for rel, path in files for imp in imports(path, rel)
            for m in EXCEPTIONS.get(_file(rel), {})
            if imp.module == m or imp.module.startswith(m + ".")}
    return [f"EXCEPTIONS lets src/raylite/{f} import {m}, which it no longer does: remove it"
            for f, ms in EXCEPTIONS.items() for m in ms if (f, m) not in used]


def cycles(files: Iterable, lazy: bool = False) -> list[list[str]]:
    """Cycles of modules importing each other while being imported (`lazy`: or when called,
    except the imports named in LAZY_CYCLES).

    Importing a.b.c runs a, a.b and a.b.c, so each is an edge, except the packages that
    also hold the importer: Python began them before the importer ran, and reaching a
    sibling does not need them finished. Importing such a package itself is an edge.
    """
    graph: dict[str, set] = {}
    for rel, path in files:
        me = module_of(rel).split(".")
        mine = {".".join(me[:i]) for i in range(1, len(me))}
        edges = set()
        for imp in imports(path, rel):
            if imp.module.startswith("raylite") and (imp.when == "import" or lazy and (
                    imp.when == "call" and (module_of(rel), imp.module) not in LAZY_CYCLES)):
                p = imp.module.split(".")
                edges |= {imp.module} | ({".".join(p[:i]) for i in range(1, len(p))} - mine)
        graph[".".join(me)] = edges - {".".join(me)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def stale_lazy_cycles(files: Iterable) -> list[str]:
    used = {(module_of(rel), imp.module) for rel, path in files for imp in imports(path, rel)
            if imp.when == "call"}
    return [f"LAZY_CYCLES names {a} -> {b}, which is no longer a lazy import: remove it"
            for a, b in LAZY_CYCLES if (a, b) not in used]


def pure_files() -> list[tuple[tuple, pathlib.Path]]:
    listed = [p for p in PURE if (SRC / p).exists()] + [p for p in PURE_IF_PRESENT if (SRC / p).exists()]
    return [(rel, path) for rel, path in tree()
            if any(_file(rel) == p or _file(rel).startswith(p + "/") for p in listed)]


def impure(files: Iterable) -> list[str]:
    return [f"src/raylite/{_file(rel)} is a pure core but imports {imp.module}: pass time (or "
            "what it needs) in as an argument and leave the I/O to its shell"
            for rel, path in files for imp in imports(path, rel)
            if imp.module.split(".")[0] in IMPURE]


def too_long(paths: Iterable[pathlib.Path]) -> list[str]:
    return [f"{p} has {n} lines (at most {MAX_LINES}): split it by responsibility"
            for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES]


# -- the tree keeps them ---------------------------------------------------------------------
def _top_names() -> set:
    return {p.stem for p in SRC.glob("*.py")} | \
        {d.name for d in SRC.iterdir() if d.is_dir() and any(d.rglob("*.py"))}


def test_every_top_level_name_is_in_the_table():
    assert unlisted(_top_names()) == []


def test_every_import_follows_the_table():
    assert crossings(tree()) == []


def test_every_exception_is_still_needed():
    assert stale_exceptions(tree()) == []


def test_no_import_cycles():
    assert cycles(tree()) == []


def test_no_lazy_import_closes_a_cycle_unless_named():
    assert cycles(tree(), lazy=True) == []
    assert stale_lazy_cycles(tree()) == []


def optional_imports(files: Iterable) -> list[str]:
    return [f"src/raylite/{_file(rel)} imports the optional package {imp.module!r}"
            + (" while being imported: import it inside a function" if imp.when == "import"
               else f": only {OPTIONAL[top]} may")
            for rel, path in files for imp in imports(path, rel)
            if (top := imp.module.split(".")[0]) in OPTIONAL
            and (_file(rel) not in OPTIONAL[top] or imp.when == "import")]


def test_optional_packages_are_imported_lazily_and_only_where_listed():
    assert optional_imports(tree()) == []


def test_an_optional_import_elsewhere_or_at_import_time_fails(tmp_path):
    (tmp_path / "a.py").write_text("import ray\n")
    (tmp_path / "b.py").write_text("def f():\n    import ray.util\n")
    found = optional_imports([(("_runtime", "ray_runtime"), tmp_path / "a.py"),
                              (("_api",), tmp_path / "b.py")])
    assert len(found) == 2 and "while being imported" in found[0] and "only" in found[1]


def test_pure_cores_do_no_io_and_read_no_clock():
    names = {_file(rel) for rel, _ in pure_files()}
    assert {p for p in PURE if p.endswith(".py")} <= names, "a listed pure core is gone: update PURE"
    assert any(n.startswith("_core/") for n in names)
    assert impure(pure_files()) == []


def test_no_file_over_500_lines():
    assert too_long(SRC.rglob("*.py")) == []


# -- each rule fails when broken (probe files stand in for files under src/raylite) ----------
def _probe(tmp_path: pathlib.Path, rel: tuple, text: str) -> list:
    path = tmp_path.joinpath(*rel).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return [(rel, path)]


def _probe_rel(top: str) -> tuple:
    """Where a probe stands in for a file of `top`: inside it (a package) or as it (a module)."""
    return (top, "probe") if (SRC / top).is_dir() else (top,)


def _module(top: str) -> str:
    return "raylite" if top == "__init__" else f"raylite.{top}"


def _import_line(top: str) -> str:
    return f"import {_module(top)}\n"


def test_the_import_parser_sees_every_form(tmp_path):
    files = _probe(tmp_path, ("_runtime", "probe"), (
        "import os.path\nimport raylite\nfrom raylite import actor, get\nimport raylite._api\n"
        "from . import base, current\nfrom .. import _ids as ids\nfrom ..exceptions import RayError\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..util import ActorPool\n"
        "def lazy():\n    from .._worker import main\n"
        "class C:\n    from .._protocol.messages import PushTask\n"))
    now, call, typing = "import", "call", "typing"
    assert imports(files[0][1], files[0][0]) == [
        Import("os.path", now), Import("raylite", now), Import("raylite.actor", now),
        Import("raylite", now), Import("raylite._api", now), Import("raylite._runtime.base", now),
        Import("raylite._runtime", now), Import("raylite._ids", now),
        Import("raylite.exceptions", now), Import("typing", now), Import("raylite.util", typing),
        Import("raylite._worker.main", call), Import("raylite._protocol.messages", now)]
    init = _probe(tmp_path, ("_worker", "__init__"), "from . import main\nfrom .main import run\n")
    assert imports(init[0][1], init[0][0]) == [Import("raylite._worker.main", now)] * 2


def test_an_unlisted_top_level_name_fails():
    (problem,) = unlisted(_top_names() | {"_new"})
    assert "src/raylite/_new is not in ALLOWED" in problem and "add it" in problem
    (problem,) = unlisted(_top_names() - {"_gcs"})
    assert "ALLOWED names _gcs" in problem


@pytest.mark.parametrize("top", sorted(ALLOWED))
def test_each_row_of_the_table_refuses_what_it_does_not_allow(tmp_path, top):
    rel = _probe_rel(top)
    for other in sorted(ALLOWED):
        files = _probe(tmp_path, rel, _import_line(other))
        assert bool(crossings(files)) == (other != top and other not in ALLOWED[top]), other
    lazy = [o for o in sorted(ALLOWED) if o != top and o not in ALLOWED[top]]
    if lazy:  # an import inside a function still crosses the line
        files = _probe(tmp_path, rel, f"def f():\n    {_import_line(lazy[0])}")
        (problem,) = crossings(files)
        assert f"imports {_module(lazy[0])}," in problem and "EXCEPTIONS" in problem


def test_an_exception_lets_one_file_import_one_module_and_must_be_used(tmp_path):
    allowed = "from .._gcs.service import GcsService\n"
    assert crossings(_probe(tmp_path, ("_node", "main"), allowed)) == []
    assert crossings(_probe(tmp_path, ("_node", "probe"), allowed))  # only the file named
    assert crossings(_probe(tmp_path, ("_node", "main"), "from .._gcs import tables\n"))
    assert crossings(_probe(tmp_path, ("_node", "main"), "from .._runtime import cluster\n"))
    real = [(rel, p) for rel, p in tree() if _file(rel) != "_node/main.py"]
    (problem,) = stale_exceptions(real + _probe(tmp_path, ("_node", "main"), "import os\n"))
    assert "_node/main.py import raylite._gcs.service" in problem and "remove it" in problem


def test_an_import_cycle_fails_and_a_lazy_one_must_be_named(tmp_path, monkeypatch):
    a, b = ("_worker", "actor_host"), ("_worker", "task_executor")
    files = _probe(tmp_path / "1", a, "from .task_executor import Executor\n") + \
        _probe(tmp_path / "1", b, "from .actor_host import start_actor\n")
    both = ["raylite._worker.actor_host", "raylite._worker.task_executor"]
    assert cycles(files) == cycles(files, lazy=True) == [both]
    lazy = _probe(tmp_path / "2", a, "def f():\n    from .task_executor import Executor\n")
    assert cycles(lazy + files[1:]) == []  # it imports ...
    assert cycles(lazy + files[1:], lazy=True) == [both]  # ... but the two depend on each other
    monkeypatch.setitem(LAZY_CYCLES, tuple(both), "named, with the reason")
    assert cycles(lazy + files[1:], lazy=True) == []
    assert stale_lazy_cycles(lazy) == []
    assert "remove it" in stale_lazy_cycles(files)[0]  # an eager import is no lazy one
    typing = _probe(tmp_path / "3", a, "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from .task_executor import Executor\n")
    assert cycles(typing + files[1:], lazy=True) == []  # never runs
    # a package whose __init__ imports a module that imports the package back
    files = _probe(tmp_path / "4", ("_core", "__init__"), "from .owner import Owner\n") + \
        _probe(tmp_path / "4", ("_core", "owner"), "from raylite._core import helper\n")
    assert cycles(files) == [["raylite._core", "raylite._core.owner"]]
    # ... but a module importing its own package's sibling needs no edge to the package
    files = _probe(tmp_path / "5", ("_core", "__init__"), "") + \
        _probe(tmp_path / "5", ("_core", "owner"), "from raylite._core.records import NodeRecord\n")
    assert cycles(files) == []


@pytest.mark.parametrize("name", sorted(IMPURE))
def test_a_pure_core_that_imports_io_or_the_clock_fails(tmp_path, name):
    for rel in (("_core", "probe"), ("_node", "scheduler"), ("_gcs", "tables")):
        for text in (f"import {name}\n", f"from {name} import x\n",
                     f"def f():\n    import {name}\n"):
            (problem,) = impure(_probe(tmp_path, rel, text))
            assert f"imports {name}" in problem and "argument" in problem
    assert impure(_probe(tmp_path, ("_core", "probe"), "import collections\nfrom typing import Any\n")) == []


def test_a_file_over_500_lines_fails(tmp_path):
    path = tmp_path / "big.py"
    path.write_text("x = 1\n" * MAX_LINES)
    assert too_long([path]) == []
    path.write_text("x = 1\n" * (MAX_LINES + 1))
    (problem,) = too_long([path])
    assert "501 lines" in problem and "split it" in problem
