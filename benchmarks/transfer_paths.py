#!/usr/bin/env python3
"""The ways a pull can move an object's bytes, without raylite around them: which
sender and receiver system calls are fastest for a file in /dev/shm (tmpfs).

    python benchmarks/transfer_paths.py [--size-mib 1024] [--rounds 3]
                                        [--senders anon,map,sendfile]
                                        [--receivers anon,map,pwrite,splice,mapfresh,...]
                                        [--sockbufs 0,4194304]

One process, TCP over 127.0.0.1: a sender thread moves --size-mib MiB to the receiver,
8 MiB at a time (each a system call or a short loop of them), and the time from the
first byte sent to the last byte stored is taken. Senders:

    anon      sendall from anonymous memory (what the raw TCP row of multinode.py sends)
    map       sendall from a read-only map of a /dev/shm file (raylite before sendfile)
    sendfile  os.sendfile from that file: the kernel hands its pages to the socket

Receivers, into a /dev/shm file whose pages exist already (a recycled segment) or, with
"fresh" appended, into a new file each round (every page allocated as the bytes land):

    anon      recv_into anonymous memory already touched (the raw TCP row: no file)
    map       recv_into a MAP_POPULATE map of the file
    pwrite    recv_into one 8 MiB buffer, then pwrite into the file
    splice    splice(2) socket -> pipe (1 MiB) -> file: no copy through the process

Rounds interleave every pair; it prints the median and each round (GB/s = 10^9 B/s).
Its files are /dev/shm/rl-paths-<pid>-*, removed at the end.
"""
from __future__ import annotations

import argparse
import fcntl
import mmap
import os
import socket
import statistics
import threading
import time

CHUNK = 8 * 2**20
PIPE = 2**20


class Files:
    def __init__(self, size: int):
        self.size = size
        self.base = f"/dev/shm/rl-paths-{os.getpid()}"
        self.src = self._make("src", fill=True)
        self.dst = self._make("dst", fill=True)
        self.anon_src = memoryview(bytearray(b"\x01") * size)
        self.anon_dst = memoryview(mmap.mmap(-1, size))
        self.anon_dst[:] = self.anon_src   # touched: its pages exist

    def _make(self, name: str, fill: bool) -> int:
        path = f"{self.base}-{name}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, self.size)
        if fill:
            for off in range(0, self.size, CHUNK):
                os.pwrite(fd, b"\x01" * min(CHUNK, self.size - off), off)
        return fd

    def fresh_dst(self) -> None:
        os.close(self.dst)
        os.unlink(f"{self.base}-dst")
        self.dst = self._make("dst", fill=False)

    def remove(self) -> None:
        for name, fd in (("src", self.src), ("dst", self.dst)):
            os.close(fd)
            os.unlink(f"{self.base}-{name}")


def send(kind: str, f: Files, sock: socket.socket) -> None:
    size = f.size
    if kind == "sendfile":
        off = 0
        while off < size:
            off += os.sendfile(sock.fileno(), f.src, off, min(CHUNK, size - off))
        return
    mm = None if kind == "anon" else mmap.mmap(f.src, size, prot=mmap.PROT_READ)
    view = f.anon_src if mm is None else memoryview(mm)
    for off in range(0, size, CHUNK):
        sock.sendall(view[off:off + CHUNK])
    if mm is not None:
        view.release()
        mm.close()


def _recv_exactly(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise EOFError("the sender closed early")
        got += n


def receive(kind: str, f: Files, sock: socket.socket) -> None:
    size = f.size
    if kind == "splice":
        r, w = os.pipe()
        fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE)
        got = 0
        while got < size:
            n = os.splice(sock.fileno(), w, min(PIPE, size - got))
            if not n:
                raise EOFError("the sender closed early")
            while n:
                k = os.splice(r, f.dst, n, offset_dst=got)
                got, n = got + k, n - k
        os.close(r)
        os.close(w)
        return
    if kind == "pwrite":
        buf = memoryview(bytearray(CHUNK))
        for off in range(0, size, CHUNK):
            n = min(CHUNK, size - off)
            _recv_exactly(sock, buf[:n])
            done = 0
            while done < n:
                done += os.pwrite(f.dst, buf[done:n], off + done)
        return
    mm = None if kind == "anon" else mmap.mmap(
        f.dst, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
    view = f.anon_dst if mm is None else memoryview(mm)
    for off in range(0, size, CHUNK):
        _recv_exactly(sock, view[off:off + min(CHUNK, size - off)])
    if mm is not None:
        view.release()
        mm.close()


def one(sender: str, receiver: str, f: Files, sockbuf: int = 0) -> float:
    if receiver.endswith("fresh"):
        f.fresh_dst()
        receiver = receiver[:-len("fresh")]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    out = socket.create_connection(listener.getsockname())
    into, _ = listener.accept()
    listener.close()
    if sockbuf:   # fixed buffers (the kernel's autotuning is off for a socket given one)
        out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sockbuf)
        into.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sockbuf)
    t0 = time.perf_counter()
    th = threading.Thread(target=send, args=(sender, f, out))
    th.start()
    try:
        receive(receiver, f, into)
    finally:
        th.join()
        out.close()
        into.close()
    return f.size / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--senders", default="anon,map,sendfile")
    p.add_argument("--receivers", default="anon,map,splice,mapfresh,pwritefresh,splicefresh")
    p.add_argument("--sockbufs", default="0",
                   help="SO_SNDBUF/SO_RCVBUF sizes to try, comma-separated bytes (0: autotuning)")
    a = p.parse_args()
    pairs = [(s, r, int(b)) for s in a.senders.split(",") for r in a.receivers.split(",")
             for b in a.sockbufs.split(",")]
    f = Files(a.size_mib * 2**20)
    rates: dict = {pair: [] for pair in pairs}
    load = os.getloadavg()[0]
    try:
        for _ in range(a.rounds):
            for pair in pairs:
                rates[pair].append(one(pair[0], pair[1], f, pair[2]))
    finally:
        f.remove()
    print(f"{a.size_mib} MiB over TCP loopback, {a.rounds} rounds; load average {load:.1f} "
          f"before, {os.getloadavg()[0]:.1f} after (GB/s = 10^9 B/s)")
    for (s, r, b), xs in rates.items():
        print(f"{s:>9} -> {r:<12} {f'buffers {b}' if b else '':>16} median "
              f"{statistics.median(xs):5.2f}   "
              + " ".join(f"{x:.2f}" for x in xs))


if __name__ == "__main__":
    main()
