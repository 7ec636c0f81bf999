"""Imports flow one way (DESIGN.md §3): public API -> _runtime -> _protocol -> leaves."""
import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "raylite"
LEAVES = {"exceptions", "_ids", "_config", "_serialization", "_private_files"}
PUBLIC = {"_api", "actor", "remote_function", "runtime_context", "util", "cli", "__init__"}


def _imports(path: pathlib.Path, rel: tuple = ()) -> set[str]:
    """raylite modules imported by a file, as top-level names under raylite ('_runtime', ...).

    `rel` is the file's place in the package (default: from its path under src/raylite).
    """
    rel = rel or path.relative_to(SRC).with_suffix("").parts
    pkg = list(rel[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # "from . import x" at the top
                    parts = [a.name for a in node.names]
                    out.update(parts)
                    continue
                out.add(parts[0])
            elif node.module == "raylite":  # from raylite import x
                out.update(a.name for a in node.names)
            elif node.module and node.module.startswith("raylite."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "raylite":  # the package itself: the public API
                    out.add("__init__")
                elif a.name.startswith("raylite."):
                    out.add(a.name.split(".")[1])
    return out


def _files(top: str):
    """The files of a module or package; none if it does not exist (yet)."""
    p = SRC / top
    return [p.with_suffix(".py")] if p.with_suffix(".py").exists() else sorted(p.rglob("*.py"))


def test_the_import_parser_sees_every_form(tmp_path):
    pkg = SRC / "_runtime"
    assert {"exceptions", "_serialization", "_runtime", "_ids"} <= _imports(pkg / "local.py")
    assert {"_runtime", "actor", "remote_function"} <= _imports(SRC / "_api.py")
    probe = tmp_path / "probe.py"  # parsed as if it were src/raylite/_runtime/probe.py
    probe.write_text("import os\nimport raylite\nfrom raylite import actor\nimport raylite._api\n"
                     "from . import base\n"
                     "def lazy():\n    from ..util import ActorPool\n")
    assert _imports(probe, ("_runtime", "probe")) == {"__init__", "actor", "_api", "_runtime", "util"}


def test_the_layers_exist():
    for top in ("_api", "_runtime", "exceptions", "_ids", "_config", "_serialization"):
        assert _files(top), top


def test_leaves_import_only_leaves():
    for leaf in LEAVES:
        for f in _files(leaf):
            assert _imports(f) <= LEAVES, f"{f.name} imports {_imports(f) - LEAVES}"


def test_runtime_never_imports_public_api():
    for f in _files("_runtime"):
        assert not _imports(f) & PUBLIC, f"{f} imports {_imports(f) & PUBLIC}"


def test_protocol_is_below_runtime():
    for f in _files("_protocol"):
        assert not _imports(f) & (PUBLIC | {"_runtime", "_node", "_gcs", "_worker"}), f


def test_gcs_and_node_stay_apart():
    for f in _files("_gcs"):
        assert not _imports(f) & (PUBLIC | {"_node", "_worker", "_runtime"}), f
    for f in _files("_node"):
        bad = _imports(f) & (PUBLIC | {"_gcs"})
        # only the process entry composes the GCS service into the head daemon's process
        if f.name == "main.py":
            bad -= {"_gcs"}
        assert not bad, f"{f} imports {bad}"


def test_object_store_is_below_runtime():
    for f in _files("_object_store"):
        assert not _imports(f) & (PUBLIC | {"_runtime", "_node", "_worker"}), f


def test_no_file_over_1000_lines():
    for f in SRC.rglob("*.py"):
        assert len(f.read_text().splitlines()) <= 1000, f
