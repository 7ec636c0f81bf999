#!/usr/bin/env python3
"""An object moved between two node daemons on loopback (1 GiB by default): GB/s, against
raw sockets moving the same bytes between two processes in the same run.

    python benchmarks/object_transfer.py [--size-mib 1024] [--rounds 3]

In a fresh temp dir it starts a head (a) and a node (b) joined to it, twice: once as they
are (on one machine connect() takes the listener's Unix socket: raylite's own path between
daemons of one user on one machine) and once with TCP forced (the daemons' connect() never
tries the Unix socket: the path between machines, here over loopback). A driver joins b
and puts a numpy array of --size-mib MiB (in b's shared memory). Each round then:

    raylite     a's daemon is asked to pull it (PullObject): connect, handshake, room in
                a's store, the chunks written into a new /dev/shm file (the first round)
                or the recycled segment of the copy freed the round before (later ones:
                a's pool), sealed: the time from the request to the reply; the copy is
                freed after
    raw         one process sends the same number of bytes from a map of a /dev/shm file
                (sendall, 8 MiB at a time), another receives them into the map of a new
                /dev/shm file (recv_into): no framing, no handshake, no accounting

and once, end to end: an actor on a reads the array by its ref (the pull plus the call).
Rounds interleave raylite and raw; it prints each one's best and median GB/s (10^9 B/s).
Everything it started is stopped by pid; its /dev/shm files are removed.
"""
from __future__ import annotations

import argparse
import mmap
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CHUNK = 8 * 2**20
TCP_ONLY = ("import runpy, raylite._protocol.transport as t; t.dial_unix = lambda address: None; "
            "runpy.run_module('raylite._node.main', run_name='__main__')")


def start(tmp: str, name: str, token: str, tcp: bool, *args: str) -> tuple:
    cmd = [sys.executable, "-c", TCP_ONLY] if tcp else [sys.executable, "-m", "raylite._node.main"]
    proc = subprocess.Popen(cmd + ["--num-cpus", "1", "--temp-dir", os.path.join(tmp, name),
                                   *args],
                            stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, name + ".log"), "wb"),
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, RAYLITE_CLUSTER_TOKEN=token))
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"node daemon {name} did not start: {line!r}")
    return proc, line.split()[1]


def stop(procs: list) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def raylite_rounds(size: int, rounds: int, tcp: bool, raw_round) -> dict:
    import numpy as np

    import raylite
    from raylite._protocol import messages as m
    from raylite._protocol.transport import connect

    tmp = tempfile.mkdtemp(prefix="raylite_xfer_")
    token = os.urandom(32).hex()
    procs: list = []
    out: dict = {"raylite": [], "raw": [], "end_to_end": None}
    try:
        pa, a = start(tmp, "a", token, tcp, "--object-store-memory", str(3 * size))
        procs.append(pa)
        pb, b = start(tmp, "b", token, tcp, "--object-store-memory", str(3 * size),
                      "--address", a)
        procs.append(pb)
        os.environ["RAYLITE_CLUSTER_TOKEN"] = token
        raylite.init(address=b)
        rt = raylite._runtime.current()

        @raylite.remote(num_cpus=0)
        class Reader:
            def read(self, arr):
                return int(arr[::2**20].sum())

        reader = Reader.remote()
        raylite.get(reader.read.remote(np.zeros(8, dtype=np.uint8)))  # started, on a
        arr = np.full(size - 4096, 1, dtype=np.uint8)
        ref = raylite.put(arr)
        loc = rt._objects.entries[ref._id].data
        t0 = time.perf_counter()
        raylite.get(reader.read.remote(ref))
        out["end_to_end"] = loc.size / (time.perf_counter() - t0) / 1e9
        conn = connect(a, bytes.fromhex(token))
        conn.send(m.FreeObjects((ref._id,)))   # a's copy goes: each round pulls it again
        for i in range(rounds):
            t0 = time.perf_counter()
            conn.send(m.PullObject(i + 1, ref._id, loc.size, "", loc.at))
            reply = conn.recv()
            dt = time.perf_counter() - t0
            if reply.error:
                raise SystemExit(f"the pull failed: {reply.error}")
            out["raylite"].append(loc.size / dt / 1e9)
            conn.send(m.FreeObjects((ref._id,)))
            out["raw"].append(raw_round(loc.size, tcp))
        conn.close()
        del ref
    finally:
        import raylite as r

        if r.is_initialized():
            r.shutdown()
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def raw_round(size: int, tcp: bool) -> float:
    """GB/s of `size` bytes from one process's map of a /dev/shm file into another's."""
    src = f"/dev/shm/raylite_bench_{os.getpid()}_src"
    dst = f"/dev/shm/raylite_bench_{os.getpid()}_dst"
    fd = os.open(src, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.ftruncate(fd, size)
    with mmap.mmap(fd, size) as mm:
        for off in range(0, size, CHUNK):
            mm[off:off + min(CHUNK, size - off)] = b"\1" * min(CHUNK, size - off)
    os.close(fd)
    if tcp:
        lst = socket.create_server(("127.0.0.1", 0))
    else:
        lst = socket.socket(socket.AF_UNIX)
        lst.bind(f"\0raylite_bench_{os.getpid()}")
        lst.listen(1)
    addr = lst.getsockname()
    pid = os.fork()
    if pid == 0:  # the sender
        try:
            s = socket.create_connection(addr) if tcp else socket.socket(socket.AF_UNIX)
            if not tcp:
                s.connect(addr)
            fd = os.open(src, os.O_RDONLY)
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            view = memoryview(mm)
            for off in range(0, size, CHUNK):
                s.sendall(view[off:off + CHUNK])
            s.recv(1)
        finally:
            os._exit(0)
    conn, _ = lst.accept()
    t0 = time.perf_counter()
    fd = os.open(dst, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.ftruncate(fd, size)
    mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))  # as a pull
    os.close(fd)
    view = memoryview(mm)
    got = 0
    while got < size:
        n = conn.recv_into(view[got:got + CHUNK])
        if not n:
            raise SystemExit("the raw sender stopped early")
        got += n
    dt = time.perf_counter() - t0
    view.release()
    mm.close()
    conn.sendall(b"x")
    conn.close()
    lst.close()
    os.waitpid(pid, 0)
    os.unlink(src)
    os.unlink(dst)
    return size / dt / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib * 2**20
    rows = []
    for tcp in (False, True):
        r = raylite_rounds(size, args.rounds, tcp, raw_round)
        path = "TCP" if tcp else "Unix socket"
        rows.append((f"raylite pull, {path}", r["raylite"]))
        rows.append((f"raw {path}", r["raw"]))
        rows.append((f"raylite end to end (actor reads the ref), {path}", [r["end_to_end"]]))
    print(f"{args.size_mib} MiB between two node daemons on loopback, {args.rounds} rounds "
          f"(GB/s = 10^9 B/s)")
    print(f"{'':52s} {'best':>6s} {'median':>7s}")
    for name, xs in rows:
        print(f"{name:52s} {max(xs):6.2f} {statistics.median(xs):7.2f}")


if __name__ == "__main__":
    main()
