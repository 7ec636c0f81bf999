"""A job's runtime_env checked, and its working_dir packed on the client and unpacked on the head.

    client: check_runtime_env(env) ─► pack(working_dir, excludes) ─► bytes (a .tar.gz)
            ─► submit to the job manager (the bytes travel as an argument)
    head:   the job's supervisor unpack()s them into <session>/jobs/<submission_id>/working_dir,
            which becomes the entrypoint's cwd and is put first on its PYTHONPATH.

Only a local directory is packed: regular files and directories (a link to a file is
packed as that file; links to directories are skipped). `excludes` are patterns
matched with fnmatch against each path relative to the working_dir and against each
name ("*.log", "data/", "/build"): a leading "/" anchors a pattern to the top, a
trailing "/" makes it match directories only. Packing stops with a clear error past
MAX_BYTES of files, naming `excludes`. Unpacking refuses absolute paths, "..", links
and devices, whatever the archive says.
"""
from __future__ import annotations

import fnmatch
import io
import os
import tarfile

MAX_BYTES = 100 * 2**20
# runtime_env keys a job takes: working_dir and excludes are used by the head, env_vars
# are set for the entrypoint, config is kept with the job.
JOB_RUNTIME_ENV_KEYS = ("working_dir", "excludes", "env_vars", "config")


def check_runtime_env(env: object) -> dict | None:
    """The runtime_env of a job, checked (ValueError naming the problem); None stays None."""
    if env is None:
        return None
    if not isinstance(env, dict):
        raise ValueError(f"runtime_env must be a dict, got {type(env).__name__}.")
    unknown = sorted(set(env) - set(JOB_RUNTIME_ENV_KEYS))
    if unknown:
        raise ValueError(f"runtime_env keys {unknown} are not supported for raylite jobs; "
                         f"supported: {list(JOB_RUNTIME_ENV_KEYS)}. Install packages on the "
                         "cluster's machines instead, or ship code in working_dir.")
    env_vars = env.get("env_vars", {})
    if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise ValueError(f"runtime_env['env_vars'] must be a dict of str -> str, got {env_vars!r}.")
    excludes = env.get("excludes", [])
    if not isinstance(excludes, list) or not all(isinstance(p, str) for p in excludes):
        raise ValueError(f"runtime_env['excludes'] must be a list of patterns, got {excludes!r}.")
    wd = env.get("working_dir")
    if wd is not None:
        if not isinstance(wd, (str, os.PathLike)):
            raise ValueError(f"runtime_env['working_dir'] must be a path, got {wd!r}.")
        wd = os.fspath(wd)
        if "://" in wd:
            raise ValueError(f"runtime_env['working_dir'] {wd!r} is a URI; raylite jobs take a "
                             "local directory, which the client packs and uploads.")
        if not os.path.isdir(wd):
            raise ValueError(f"runtime_env['working_dir'] {wd!r} is not a directory here: give "
                             "the path of a local directory to upload.")
    return {**env, **({"working_dir": wd} if wd is not None else {})}


def _excluded(rel: str, is_dir: bool, patterns: list[str]) -> bool:
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


def pack(directory: str, excludes: list[str] = (), max_bytes: int = MAX_BYTES) -> bytes:
    """The directory's files as a .tar.gz; ValueError past max_bytes of (uncompressed) files."""
    buf = io.BytesIO()
    total = 0
    root = os.path.abspath(directory)
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))
                                 and not _excluded(rel_dir + d, True, list(excludes)))
            for d in dirnames:
                tar.add(os.path.join(dirpath, d), arcname=rel_dir + d, recursive=False)
            for f in sorted(filenames):
                path = os.path.join(dirpath, f)
                if _excluded(rel_dir + f, False, list(excludes)) or not os.path.isfile(path):
                    continue
                total += os.path.getsize(path)
                if total > max_bytes:
                    raise ValueError(
                        f"working_dir {directory!r} holds more than {max_bytes // 2**20} MiB of "
                        "files: leave data out with runtime_env['excludes'] (e.g. "
                        "[\"data/\", \"*.ckpt\"]) and read it from shared storage instead.")
                with open(path, "rb") as fh:
                    info = tar.gettarinfo(arcname=rel_dir + f, fileobj=fh)
                    tar.addfile(info, fh)
    return buf.getvalue()


def unpack(data: bytes, target: str) -> None:
    """Extracts a pack()ed archive into `target` (made, 0700); refuses unsafe members."""
    os.makedirs(target, mode=0o700, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            parts = m.name.split("/")
            if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                raise ValueError(f"the working_dir archive holds {m.name!r}, which is not a plain "
                                 "file or directory inside it: refusing to unpack it.")
        for m in members:
            path = os.path.join(target, *m.name.split("/"))
            if m.isdir():
                os.makedirs(path, mode=0o700, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            src = tar.extractfile(m)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                         0o700 if m.mode & 0o100 else 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
