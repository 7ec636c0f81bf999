"""One way to pack a local directory for a runtime_env or a job, and to unpack it safely.

    pack(directory, excludes, prefix) ─► Package(sha, data): a zip, the same bytes for the
        same files (sorted, fixed timestamps), named by the sha256 of those bytes
    unpack(data, target)  ─► the files under `target` (dirs 0700, files 0600 or 0700)

Only regular files and directories are packed: a link to a file is packed as that file,
links to directories are skipped. `excludes` are gitignore-like patterns matched with
fnmatch against each path relative to the directory and against each name ("*.log",
"data/", "/build"): a leading "/" anchors a pattern to the top, a trailing "/" makes it
match directories only. `.git` is always left out, as Ray does. Packing stops with a
clear error past `max_bytes` of files (uncompressed), naming the size and `excludes`.
Unpacking refuses absolute paths, "..", links and anything but files and directories,
whatever the archive says, and never follows a link already in `target`.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import stat
import zipfile
from typing import NamedTuple

MAX_BYTES = 100 * 2**20       # files in one package, uncompressed (Ray's working_dir limit)
ALWAYS_EXCLUDED = (".git/",)
_EPOCH = (1980, 1, 1, 0, 0, 0)


class Package(NamedTuple):
    sha: str                  # sha256 of `data`, hex: the package's name everywhere
    data: bytes               # the zip


def excluded(rel: str, is_dir: bool, patterns: list | tuple) -> bool:
    """True when the path `rel` (relative, "/"-separated) matches one of `patterns`."""
    name = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        dir_only = pat.endswith("/")
        p = pat.rstrip("/")
        if not p or (dir_only and not is_dir):
            continue
        if p.startswith("/"):
            if fnmatch.fnmatchcase(rel, p[1:]):
                return True
        elif fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p):
            return True
    return False


def _files(root: str, patterns: list) -> list[tuple[str, str, bool]]:
    """(path, relative name, is_dir) of what to pack, sorted, excludes applied."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))
                             and not excluded(rel_dir + d, True, patterns))
        out += [(os.path.join(dirpath, d), rel_dir + d, True) for d in dirnames]
        for f in sorted(filenames):
            path = os.path.join(dirpath, f)
            if not excluded(rel_dir + f, False, patterns) and os.path.isfile(path):
                out.append((path, rel_dir + f, False))
    return sorted(out, key=lambda x: x[1])


def pack(directory: str, excludes: list | tuple = (), prefix: str = "",
         max_bytes: int = MAX_BYTES, what: str = "working_dir") -> Package:
    """The directory's files as a zip (under `prefix/` when given); ValueError past
    `max_bytes` of files. `what` names the option in errors ("working_dir", "py_modules")."""
    root = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(root):
        raise ValueError(f"runtime_env['{what}'] {os.fspath(directory)!r} is not a directory here: "
                         "give the path of a local directory to upload.")
    patterns = list(ALWAYS_EXCLUDED) + list(excludes)
    files = _files(root, patterns)
    total = sum(os.path.getsize(p) for p, _, is_dir in files if not is_dir)
    if total > max_bytes:
        raise ValueError(
            f"runtime_env['{what}'] {os.fspath(directory)!r} holds {total / 2**20:.1f} MiB of files, "
            f"more than the limit of {max_bytes / 2**20:g} MiB: leave data out with "
            "runtime_env['excludes'] (e.g. [\"data/\", \"*.ckpt\"]) and read it from shared "
            "storage instead.")
    head = prefix.strip("/") + "/" if prefix else ""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for path, rel, is_dir in files:
            info = zipfile.ZipInfo(head + rel + ("/" if is_dir else ""), _EPOCH)
            executable = not is_dir and os.stat(path).st_mode & 0o100
            info.external_attr = ((stat.S_IFDIR | 0o700) if is_dir else
                                  (stat.S_IFREG | (0o700 if executable else 0o600))) << 16
            if is_dir:
                z.writestr(info, b"")
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as fh, z.open(info, "w") as out:
                while chunk := fh.read(1 << 20):
                    out.write(chunk)
    data = buf.getvalue()
    return Package(hashlib.sha256(data).hexdigest(), data)


def file_package(path: str, what: str = "py_modules", max_bytes: int = MAX_BYTES) -> Package:
    """A file shipped as it is (a .whl, itself a zip), named by its content's sha256."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f"runtime_env['{what}'] {path!r} is {size / 2**20:.1f} MiB, more than "
                         f"the limit of {max_bytes / 2**20:g} MiB.")
    with open(path, "rb") as fh:
        data = fh.read()
    return Package(hashlib.sha256(data).hexdigest(), data)


def unpack(data: bytes, target: str) -> None:
    """Extracts a zip into `target` (made 0700; it must not exist yet or be empty and ours).
    Refuses members that are not plain files or directories inside it."""
    os.makedirs(target, mode=0o700, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = z.infolist()
        for info in members:
            parts = info.filename.rstrip("/").split("/")
            kind = stat.S_IFMT(info.external_attr >> 16)
            if info.filename.startswith("/") or ".." in parts or "" in parts or \
                    kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ValueError(f"the package holds {info.filename!r}, which is not a plain file "
                                 "or directory inside it: refusing to unpack it.")
        for info in members:
            path = os.path.join(target, *info.filename.rstrip("/").split("/"))
            if info.is_dir():
                _mkdirs(target, path)
                continue
            _mkdirs(target, os.path.dirname(path))
            mode = 0o700 if (info.external_attr >> 16) & 0o100 else 0o600
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode)
            with os.fdopen(fd, "wb") as out, z.open(info) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)


def _mkdirs(target: str, path: str) -> None:
    """Makes `path` (inside `target`) and its parents, 0700; a link on the way is refused."""
    rel = os.path.relpath(path, target)
    cur = target
    for part in ([] if rel == "." else rel.split(os.sep)):
        cur = os.path.join(cur, part)
        try:
            os.mkdir(cur, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                raise ValueError(f"the package holds {part!r} both as a file and as a directory, "
                                 "or a link was put there: refusing to unpack it.") from None
