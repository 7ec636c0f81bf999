"""The temp dir and what raylite keeps in it belong to this user alone (a leaf module).

Another user of the machine is an attacker (DESIGN.md §2). In a shared /tmp they can
create raylite's temp dir before us, or plant in it a record, a session dir, a token or
a link, so that our init() or `raylite status` connects to their server. So every path
raylite reads or writes under its temp dir goes through here:

    <temp>/                             make_dir / check_dir: a real directory (no link),
    <temp>/session_*/, raylite_nodes/     ours, no access for group or other (0700)
    <temp>/raylite_current_cluster      open_file / read_text / write_text: opened with
    <temp>/raylite_nodes/<pid>            O_NOFOLLOW, then checked on the opened descriptor
    <session>/node.json, token, logs      (fstat: no window between check and use): a
                                          regular file, ours, not writable by group or
                                          other; secret=True (the token): no group/other
                                          bits at all

Anything else raises NotPrivateError naming the path, what is wrong and what to do.
It is not an OSError on purpose: code that treats an unreadable file as missing
(`except OSError`) must not turn a planted file into a silent fallback.

"Ours" is the effective uid. A dir raylite creates gets mode 0700 whatever the umask;
a file it writes gets 0600, written whole to a temporary name then renamed, so a
reader never sees half a record.
"""
from __future__ import annotations

import errno
import os
import stat

_HINT = "or pick another temp dir with --temp-dir or RAYLITE_TEMP_DIR"


class NotPrivateError(RuntimeError):
    """A path in raylite's temp dir is not this user's alone: raylite will not use it."""


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _refuse(path: str, st: os.stat_result | None, kind: str, secret: bool = False) -> None:
    """Raises NotPrivateError if `st` (of `path`, a `kind`) is not ours alone; None = a link."""
    me = os.geteuid()
    if st is None:
        why = ("is a symbolic link, and raylite never follows links in its temp dir. "
               f"Remove the link, {_HINT}.")
    elif kind == "directory" and not stat.S_ISDIR(st.st_mode) or \
            kind == "file" and not stat.S_ISREG(st.st_mode):
        what = "directory" if kind == "directory" else "regular file"
        why = f"is not a {what}. Remove it, {_HINT}."
    elif st.st_uid != me:
        why = (f"belongs to {_owner(st.st_uid)}, not to you ({_owner(me)}): another user may "
               f"have made it to capture your clusters. Remove it, {_HINT}.")
    else:
        mode = stat.S_IMODE(st.st_mode)
        banned = 0o077 if kind == "directory" or secret else 0o022
        if not mode & banned:
            return
        can = "read or change what raylite keeps there" if kind == "directory" else \
            "read or change it" if secret else "change it"
        why = (f"has mode {mode:04o}, so other users can {can}. If it is yours, "
               f"`chmod {'700' if kind == 'directory' else '600'} {path}`; else remove it, "
               f"{_HINT}.")
    raise NotPrivateError(f"raylite will not use {path}: it {why}")


def check_dir(path: str) -> bool:
    """True if `path` is a directory that is ours alone, False if it does not exist;
    NotPrivateError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno == errno.ENOTDIR:  # a file, or (ELOOP on some systems) a link
            st = os.lstat(path)
            _refuse(path, None if stat.S_ISLNK(st.st_mode) else st, "directory")
        if e.errno == errno.ELOOP:
            _refuse(path, None, "directory")
        raise
    try:
        _refuse(path, os.fstat(fd), "directory")
    finally:
        os.close(fd)
    return True


def make_dir(path: str) -> None:
    """Creates `path` (and missing parents) as a dir only we can enter, or checks the one there."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        check_dir(path)
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)  # mkdir's mode passed through the umask
        _refuse(path, os.fstat(fd), "directory")
    finally:
        os.close(fd)


def open_file(path: str, flags: int = os.O_RDONLY, secret: bool = False) -> int:
    """os.open(path, flags) without following a link; the file must be ours (a new one is
    created 0600). Returns the descriptor; FileNotFoundError if missing and no O_CREAT."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            _refuse(path, None, "file")
        raise
    try:
        _refuse(path, os.fstat(fd), "file", secret)
    except NotPrivateError:
        os.close(fd)
        raise
    return fd


def read_text(path: str, secret: bool = False) -> str | None:
    """The file's text, None if it does not exist; NotPrivateError if it is not ours."""
    try:
        fd = open_file(path, os.O_RDONLY, secret)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    """Writes the whole file, mode 0600, atomically (a temporary name, then rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileExistsError:  # left by a writer with our pid that died mid-write
        os.unlink(tmp)
        fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def rotate(path: str, backup_count: int) -> int:
    """Shifts `path` to `path.1` (.1 to .2, ..., the oldest .N replaced; with no backups the
    file is removed) and returns a descriptor of a fresh private `path`, open for appending."""
    if backup_count == 0:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for i in range(backup_count, 0, -1):
        try:
            os.replace(f"{path}.{i - 1}" if i > 1 else path, f"{path}.{i}")
        except FileNotFoundError:
            pass
    return open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
