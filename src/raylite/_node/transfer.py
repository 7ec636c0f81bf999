"""Objects between nodes, mixed into NodeServer: pulling a copy in, serving copies out,
and freeing copies on other nodes for their owners.

    reader (a task's argument, a get()) ──PullObject(id, size, owner, source)──► this daemon
       here already ─────────────────────────────────────────► ObjectPulled at once
       being pulled ─► waits on that pull (one transfer per object and node)
       else ─► StoreAccounting.allocate (room, spilling older objects) ─► queued; at most
               MAX_TRANSFERS run at once, each on a thread of its own:
         connect(source) ──ReadObject(id, size)──► source daemon (_on_read_object, its reader
                                                   thread, after the lock: MAX_SERVES at once)
           ObjectChunk(offset, n) + n raw bytes, CHUNK at a time (sent from the source's
           file by sendfile: Connection.send_file), spliced from the socket into the file
           at the offset (Connection.recv_file: no copy through either daemon), the file
             a pooled segment (allocate() chose one: a freed segment whose pages exist),
               renamed to the object's name once sealed: steady pulls allocate no pages
             else a new file (O_EXCL) (tmpfs fills new pages for a write 1.5-2x as fast
               as it faults them into a map: benchmarks/transfer_paths.py)
         header written last (the file is then sealed, as a local writer's) ──► every
         waiting reader gets ObjectPulled(node tag, this daemon's address); the reader tells
         the owner (ObjectCopied), whose directory (_core/owner/objects.py) now lists it
    owner ──DropCopies(at, ids)──► its daemon ──FreeObjects(ids)──► the daemon at `at`

A copy is accounted in this node's store to the object's owner, like an object
written here, so freeing (FreeObjects from the owner's daemon), spilling and a
local owner leaving treat it the same way; for an owner on another node, a
thread holds a connection to it and frees its copies here once it closes
(_watch_owner: the owner exited, crashed or shut down). Bytes from another node are checked
as a local file is: every chunk's offset and length must be the next ones, the
header must name the object, and the file is ours (0600, O_EXCL; a pooled
segment passes the same fstat checks, shm.open_recycled) before the first byte
lands; a bad frame ends that transfer (and its connection), not the daemon.
Nothing received is unpickled here. A freed copy joins the pool only when no
process has it open or mapped (objects.py, _pool_if_unused): a value a reader
still holds never changes under it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from .._object_store import shm
from .._object_store.pulls import PullQueue
from .._protocol import messages as m
from .._protocol.connection import make_pipe, pwrite_all
from .._protocol.transport import connect
from .outbox import send as _send

log = logging.getLogger("raylite.node")

CHUNK = 8 * 2**20        # bytes per ObjectChunk
MAX_TRANSFERS = 4        # pulls into this node running at once; the rest queue
MAX_SERVES = 8           # copies this node sends out at once; the rest wait their turn
CONNECT_S = 10.0         # to reach the source daemon and pass the handshake
DIAL_TRIES = 3           # connection attempts before a peer counts as unreachable


class _Job:
    """One transfer: what to fetch, from where, and the room allocate() made for it."""
    __slots__ = ("object_id", "size", "source", "alloc", "victims", "conn", "dead", "ended",
                 "reuse", "file", "recycled")

    def __init__(self, msg: m.PullObject, alloc: Any, victims: list, reuse: str = ""):
        self.object_id, self.size, self.source = msg.object_id, msg.size, msg.source
        self.alloc = alloc
        self.victims = victims      # (id, size) to spill first, as allocate() chose
        self.conn: Any = None       # its connection to the source, once dialed
        self.dead: str | None = None  # the source's node died (NodeDied): how
        self.ended = False          # its readers were answered, its room given back
        self.reuse = reuse          # a pooled segment to land in ("": a new file)
        self.file = reuse           # the path of the file that is its own ("": none yet)
        self.recycled = False       # it landed in the pooled segment


class ObjectTransfers:
    _lock: Any
    store: Any
    listener: Any
    spill_dir: str
    at: str
    stopped: Any
    _clients: dict
    _spilling: int

    def _init_transfers(self) -> None:
        self._watched: set = set()               # remote owners whose copies are here
        self.pulls = PullQueue(MAX_TRANSFERS)
        self._serves = threading.BoundedSemaphore(MAX_SERVES)
        self.transfer_stats = {"pulled": 0, "pulled_bytes": 0, "pulled_recycled": 0,
                               "served": 0, "failed": 0}
        self._dead_sources: dict[str, str] = {}  # daemon address of a dead node -> how it died
        self.served_ids: set = set()              # objects sent out: never recycled here

    def _sources_died(self, address: str, why: str) -> None:
        """A node died (lock held): pulls from it, queued or under way, end now (their
        readers told, their room given back: a rebuilt object of the same id may be written
        here at once); no new pull from it starts."""
        self._dead_sources[address] = why
        for p in list(self.pulls.pulls.values()):
            job = p.job
            if job.source == address:
                job.dead = why
                if job.conn is not None:
                    job.conn.close()  # its thread wakes up and removes only its own file
                self._end_pull(job, f"pulling object {job.object_id.hex()} from the node "
                                    f"daemon at {address} failed: its node {why}")

    def _end_pull(self, job: _Job, error: str | None, counted: bool = True) -> None:
        """A pull is over (lock held): its readers hear how, the next pulls start."""
        job.ended = True
        stats = self.transfer_stats
        if error is not None:
            stats["failed"] += 1
            self.store.abort(job.object_id)
        elif counted:
            stats["pulled"] += 1
            stats["pulled_bytes"] += job.size
            stats["pulled_recycled"] += job.recycled
        waiters, jobs = self.pulls.finished(job.object_id)
        for c, req in waiters:
            self._pulled(c, req, error)
        self._start(jobs)

    # -- the receiving side ------------------------------------------------------
    def _on_pull_object(self, c: Any, msg: m.PullObject) -> None:
        from ..exceptions import ObjectStoreFullError, OutOfDiskError

        oid = msg.object_id
        if self.stopped.is_set():
            self._pulled(c, msg.req, "this node daemon is stopping")
            return
        if oid in self.pulls:
            self.pulls.request(oid, (c, msg.req), None)
            return
        e = self.store.objects.get(oid)
        if e is not None:  # here already (pulled before, or written here)
            self._pulled(c, msg.req, None if e.size == msg.size else
                         f"this node holds object {oid.hex()} with {e.size} bytes, not {msg.size}")
            return
        if msg.source in self._dead_sources:
            self._pulled(c, msg.req, f"the node at {msg.source} {self._dead_sources[msg.source]}")
            return
        try:
            alloc = self.store.allocate(oid, msg.size, msg.owner, self._disk_free())
        except (ObjectStoreFullError, OutOfDiskError) as err:
            self._pulled(c, msg.req, f"no room for a copy on this node: {err}")
            return
        for pid in alloc.drop:
            shm.unlink(self._pool_path(pid))
        reuse = "" if alloc.reuse is None else self._pool_path(alloc.reuse)
        victims = [(v, self.store.objects[v].size) for v in alloc.spill]
        self._spilling += sum(size for _, size in victims)
        self._watch_owner(msg.owner)
        self._start(self.pulls.request(oid, (c, msg.req), _Job(msg, alloc, victims, reuse)))

    def _pulled(self, c: Any, req: int, error: str | None) -> None:
        _send(c.conn, m.ObjectPulled(req, error, self.node_tag, self.at))

    def _start(self, jobs: list) -> None:
        for job in jobs:
            threading.Thread(target=self._run_pull, args=(job,), daemon=True,
                             name="raylite-pull").start()

    def _run_pull(self, job: _Job) -> None:
        error = None
        kept: list = []
        path = ""
        try:
            if self.stopped.is_set():  # stop() has deleted this node's files: write no more
                raise OSError("this node daemon is stopping")
            if job.victims:
                kept, spill_error = self._spill(job.victims)
                if spill_error is not None:
                    raise OSError(f"spilling older objects to make room failed: {spill_error}")
            path = shm.spill_path(self.spill_dir, job.object_id) if job.alloc.to_disk else \
                shm.segment_path(self.node_tag, job.object_id)
            receive(job.source, self.listener.token, job.object_id, job.size, path, job)
        except Exception as e:  # the source, the wire, the disk: this pull fails, not the daemon
            error = (f"pulling object {job.object_id.hex()} ({job.size / 2**20:.1f} MiB) from "
                     f"the node daemon at {job.source} failed: "
                     f"{f'its node {job.dead}' if job.dead else e}")
            log.warning("%s", error)
        with self._lock:
            self._spilling -= sum(size for _, size in job.victims)
            for oid, _ in job.victims:
                if oid not in self.store.objects:  # freed while it was being copied
                    shm.unlink(shm.spill_path(self.spill_dir, oid))
            self.store.unspill(kept)
            if job.ended:  # its source died meanwhile (_sources_died answered for it)
                if job.file:
                    shm.unlink(job.file)
                return
            freed = error is None and job.object_id not in self.store.objects
            if error is not None and job.file or freed:  # freed while it travelled
                shm.unlink(job.file)
            self._end_pull(job, error, counted=not freed)

    # -- owners on other nodes ---------------------------------------------------
    def _watch_owner(self, owner: str) -> None:
        """Copies are accounted to their owner; one connected to this daemon frees them when
        it leaves (owner_gone on disconnect). For an owner elsewhere, a thread holds a
        connection to it (it never sends on it) and frees them when that closes: the owner
        exited or shut down. One thread per such owner (lock held)."""
        if not owner or owner in self._watched or \
                any(x.address == owner for x in self._clients.values()):
            return
        self._watched.add(owner)
        threading.Thread(target=self._watch, args=(owner,), daemon=True,
                         name="raylite-owner-watch").start()

    def _watch(self, owner: str) -> None:
        conn = _dial(owner, self.listener.token)   # None: not reachable, after a few tries
        if conn is not None:
            try:
                while True:
                    conn.recv()   # nothing comes: returns (raises) once the owner hangs up
            except Exception:
                pass
            finally:
                conn.close()
        with self._lock:
            self._watched.discard(owner)
            if not self.stopped.is_set():
                self._delete_objects(self.store.owner_gone(owner))

    # -- the sending side ---------------------------------------------------------
    def _on_read_object(self, c: Any, msg: m.ReadObject) -> None:
        e = self.store.objects.get(msg.object_id)
        if e is None or e.size != msg.size:
            why = "this node does not hold it" if e is None else \
                f"this node's copy has {e.size} bytes, not {msg.size}"
            _send(c.conn, m.ObjectChunk(msg.req, 0, 0, f"object {msg.object_id.hex()}: {why}"))
            return
        c.after = lambda: self._serve_object(c, msg)  # the copy: never under the lock

    def _serve_object(self, c: Any, msg: m.ReadObject) -> None:
        """Streams the object's file on c's connection with sendfile(2) (its segment, else
        its spill file: checked as any reader checks). Its id joins served_ids first: such
        a segment is unlinked when freed, never recycled, since its pages may still be in
        flight (or queued at the receiver) after the last sendfile returns."""
        oid = msg.object_id
        with self._serves:
            with self._lock:
                if oid in self.store.objects:
                    self.served_ids.add(oid)
            try:
                fd = self._open_own(oid, msg.size)
            except Exception as e:
                c.conn.send(m.ObjectChunk(msg.req, 0, 0, f"object {oid.hex()} cannot be read "
                                                       f"here: {e}"))
                return
            try:
                for off in range(0, msg.size, CHUNK):
                    n = min(CHUNK, msg.size - off)
                    c.conn.send_file(m.ObjectChunk(msg.req, off, n), fd, off, n)
            finally:
                os.close(fd)
        with self._lock:
            self.transfer_stats["served"] += 1

    def _open_own(self, oid: bytes, size: int) -> int:
        try:
            return shm.open_checked(shm.segment_path(self.node_tag, oid), oid, size)
        except FileNotFoundError:  # spilled meanwhile
            return shm.open_checked(shm.spill_path(self.spill_dir, oid), oid, size)

    def _on_get_transfer_stats(self, c: Any, msg: m.GetTransferStats) -> None:
        stats = {**self.transfer_stats, **self.pulls.statistics()}
        _send(c.conn, m.TransferStats(msg.req, tuple(sorted(stats.items()))))

    # -- freeing copies elsewhere -------------------------------------------------
    def _on_drop_copies(self, c: Any, msg: m.DropCopies) -> None:
        """Forwards the free to the daemon at msg.at, off the lock (it may need dialing)."""
        if msg.at == self.at:
            self._delete_objects(self.store.free(msg.object_ids))
            return
        c.after = lambda: self._forward_free(msg.at, msg.object_ids)

    def _forward_free(self, at: str, ids: tuple) -> None:
        try:
            conn = connect(at, self.listener.token, timeout=CONNECT_S)
        except (ConnectionError, OSError) as e:  # that node is gone: its copies went with it
            log.info("cannot free %d object copies on %s: %s", len(ids), at, e)
            return
        try:
            conn.send(m.FreeObjects(tuple(ids)))
        except OSError:
            pass
        finally:
            conn.close()


def _dial(address: str, token: bytes, job: Any = None) -> Any:
    """A connection to `address`, trying DIAL_TRIES times (a loaded peer may miss a
    handshake's deadline); None when every try failed, or the source's node died."""
    for attempt in range(DIAL_TRIES):
        if job is not None and job.dead:
            return None
        try:
            return connect(address, token, timeout=CONNECT_S)
        except (ConnectionError, OSError):
            if attempt + 1 < DIAL_TRIES:
                time.sleep(0.5 * 2**attempt)
    return None


def receive(source: str, token: bytes, oid: bytes, size: int, path: str, job: Any = None) -> None:
    """Pulls object `oid` (`size` bytes) from the node daemon at `source` to `path`, the
    header last, each chunk spliced from the socket into the file (no copy through this
    process, no map: tmpfs fills new pages for a write 1.5-2x as fast as it faults them
    into a map). Into the pooled segment job.reuse when there is one (its pages
    exist; renamed to `path` once sealed), else into a new file created at `path` (O_EXCL).
    Raises (ConnectionError, EOFError, OSError, ValueError) naming what went wrong; the
    caller removes job.file. `job` (a _Job) is given the connection, so that the source's
    death can close it, and is looked at between dials."""
    conn = _dial(source, token, job)
    if conn is None:
        raise ConnectionError(f"cannot reach the node daemon at {source} ({DIAL_TRIES} tries)")
    if job is not None:
        job.conn = conn
        if job.dead:  # died while we dialed: no file of ours at the object's name
            conn.close()
            raise ConnectionError(f"its node {job.dead}")
    try:
        fd, reuse = _open_target(path, size, job)
    except BaseException:
        conn.close()
        raise
    head = bytearray(shm.HEAD_SIZE)
    pipe: tuple = ()
    try:
        pipe = make_pipe()
        conn.send(m.ReadObject(1, oid, size))
        _receive_chunks(conn, head, size, fd, pipe)
        why = shm.check_head(head, oid)
        if why:
            raise ValueError(f"the bytes received are not that object: {why}")
        pwrite_all(fd, memoryview(head), 0)  # sealed: readers may map it from now on
    finally:
        for d in (fd, *pipe):
            os.close(d)
        conn.close()
    if reuse:
        os.rename(reuse, path)
        if job is not None:
            job.file, job.recycled = path, True


def _open_target(path: str, size: int, job: Any) -> tuple[int, str]:
    """A read-write descriptor of the file the pull writes, `size` bytes, and the pooled
    segment's path when it is one ("" for a new file at `path`); job.file names it."""
    reuse = job.reuse if job is not None else ""
    if reuse:
        try:
            return shm.open_recycled(reuse, size), reuse
        except (OSError, shm.BadObjectFile) as e:
            log.warning("not reusing %s for a pulled copy: %s", reuse, e)
            shm.unlink(reuse)
            job.file = ""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise OSError(f"{path} exists already; another process may have created it") from None
    if job is not None:
        job.file = path
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd, ""


def _receive_chunks(conn: Any, head: bytearray, size: int, fd: int, pipe: tuple) -> None:
    """Receives the chunks in order into `fd` at their offsets (Connection.recv_file:
    spliced from the socket, no copy through this process). The first HEAD_SIZE bytes are
    kept aside in `head` (the file has zeros or a pooled segment's old bytes there until
    the caller writes it last)."""
    off = 0
    while off < size:
        msg = conn.recv()
        if type(msg) is not m.ObjectChunk or msg.req != 1:
            raise ValueError(f"expected an ObjectChunk, got {type(msg).__name__}")
        if msg.error is not None:
            raise ValueError(f"the source refused: {msg.error}")
        n = msg.length
        if msg.offset != off or type(n) is not int or not 0 < n <= min(CHUNK, size - off):
            raise ValueError(f"chunk at {msg.offset!r} of {n!r} bytes; expected offset {off}, "
                             f"at most {min(CHUNK, size - off)} bytes")
        k = max(0, min(n, shm.HEAD_SIZE - off))   # header bytes in this chunk
        if k:
            conn.recv_into(memoryview(head)[off:off + k])
        conn.recv_file(fd, off + k, n - k, pipe)
        off += n
