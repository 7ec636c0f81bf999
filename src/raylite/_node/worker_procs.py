"""Worker processes, the node daemon's half that starts, admits, watches and replaces them
(mixed into NodeServer; it shares the server's lock, scheduler and clients).

    Spawn(n) ─► _spawn(): a new worker id in the WorkerTable ─► "spawn <id>" to the zygote
    zygote thread ◄─ "forked" / "failed" / "exit <pid> <status>" ─► the table, under the lock:
        a start that failed (exited before registering, fork failed, expired after
        START_TIMEOUT_S, or its zygote died) ─► the scheduler counts it, spawns again
        (after a pause once starts keep failing)
        the zygote gone (its pipe closed) ─► a fresh one (worker_pool.Zygote.start)
    RegisterWorker ─► admitted only with an id we issued and the pid the zygote reported
    a worker's connection closed ─► its reader waits up to EXIT_WAIT_S for the exit status,
        so the actor death text and owners asking (GetWorkerExit) learn how it died

Worker pids are signalled only through the zygote, and only while the zygote has
reported them forked and not yet exited.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from .. import _ids
from .._protocol import messages as m
from .outbox import send as _send
from .outbox import shut as _shut
from .worker_pool import Zygote, describe_exit, oom_kills
from .worker_table import WAIT, WorkerTable

log = logging.getLogger("raylite.node")


class WorkerProcesses:
    START_TIMEOUT_S = 30.0   # a worker not registered by then is killed and replaced
    EXIT_WAIT_S = 1.0        # a closed worker connection waits this long for the exit status
    FAILED_STARTS_OK = 4     # consecutive failed starts before respawning slows down

    _lock: Any
    _clients: dict
    _workers: dict
    sched: Any
    listener: Any
    session_dir: str
    node_id: bytes
    stopped: threading.Event

    def _init_workers(self, zygote: Zygote) -> None:
        self.zygote: Zygote | None = zygote
        self.procs = WorkerTable(self.START_TIMEOUT_S)
        self._exit_events: dict[bytes, threading.Event] = {}
        self._oom = oom_kills()
        self._failed_starts = 0
        self._quick_deaths = 0           # zygotes in a row that died within 30 s

    def _start_zygote_thread(self) -> None:
        """The thread that reads the zygote's events and replaces a dead zygote. It lives as
        long as the daemon: a zygote dies with the thread that started it (PDEATHSIG)."""
        threading.Thread(target=self._zygote_loop, args=(self.zygote,), daemon=True,
                         name="raylite-zygote").start()

    # -- requests ------------------------------------------------------------------
    def _spawn(self, env: str | None = None) -> None:
        """Asks the fork server for a worker (of runtime_env key `env`, ready on this node)."""
        if self.stopped.is_set():
            return
        p = self.procs.requested(_ids.random_id(), time.monotonic(), env)
        p.sent = self.zygote is not None and self.zygote.spawn(p.worker_id, env)

    def _kill_worker(self, worker_id: bytes) -> None:
        pid = self.procs.pid_of(worker_id)
        if pid and self.zygote is not None:
            self.zygote.kill(pid)

    def _on_register_worker(self, c: Any, msg: m.RegisterWorker) -> None:
        p = self.procs.starting.get(msg.worker_id)
        env = p.env if p is not None else None
        verdict = self.procs.register(msg.worker_id, msg.pid, msg.address)
        if verdict == WAIT:
            self.procs.starting[msg.worker_id].early = (c, msg)
            return
        if verdict is not None:
            log.warning("refused a worker registration from %s: %s", c.conn.peer, verdict)
            _shut(c.conn)
            return
        self._failed_starts = 0
        c.kind, c.worker_id, c.pid, c.address = "worker", msg.worker_id, msg.pid, msg.address
        self._workers[msg.worker_id] = c
        self._exit_events[msg.worker_id] = threading.Event()
        self._execute(self.sched.worker_registered(msg.worker_id, env))

    def _on_get_worker_exit(self, c: Any, msg: m.GetWorkerExit) -> None:
        reason, alive = self.procs.death_of(msg.address)
        if reason is None and alive is not None:
            alive.waiters.append((c.conn, msg.req))  # answered when it exits or is forgotten
            return
        _send(c.conn, m.WorkerExit(msg.req, reason or ""))

    def _await_exit(self, worker_id: bytes) -> None:
        """A worker's connection closed: wait (no lock held) until its exit is reported."""
        ev = self._exit_events.get(worker_id)
        if ev is not None and not self.stopped.is_set():
            ev.wait(self.EXIT_WAIT_S)

    def _forget_worker(self, worker_id: bytes) -> str | None:
        """Its connection is gone (lock held): how it died, if known. One still running is
        killed."""
        self._exit_events.pop(worker_id, None)
        p = self.procs.gone(worker_id)
        if p is None:
            return None
        if p.reason is None:
            self._kill_worker_proc(p.pid)
        self._answer(p)
        return p.reason

    def _kill_worker_proc(self, pid: int) -> None:
        p = self.procs.by_pid.get(pid)
        if p is not None and self.zygote is not None:
            self.zygote.kill(pid)

    def _answer(self, p: Any) -> None:
        for conn, req in p.waiters:
            _send(conn, m.WorkerExit(req, p.reason or ""))
        p.waiters = []

    # -- the zygote thread -----------------------------------------------------------
    def _zygote_loop(self, z: Zygote) -> None:
        timeout = self.START_TIMEOUT_S
        while True:
            events = z.events(timeout)
            if events is None:
                z.close_events()
                z = self._replace_zygote(z)
                if z is None:
                    return
                timeout = 0.0
                continue
            with self._lock:
                for ev in events:
                    try:
                        self._on_zygote_event(ev)
                    except Exception:  # this thread must live: it is how workers get replaced
                        log.exception("error handling the worker fork server's %s", ev)
                now = time.monotonic()
                for p in self.procs.expired(now):
                    log.warning("worker process %s did not register within %gs: killed, "
                                "starting another", p.pid or "(not forked yet)",
                                self.START_TIMEOUT_S)
                    self._kill_worker_proc(p.pid)
                    if p.early is not None:
                        _shut(p.early[0].conn)
                    self._start_failed(p.env)
                first = self.procs.next_deadline()
                timeout = self.START_TIMEOUT_S if first is None else \
                    max(0.05, first + self.START_TIMEOUT_S - now + 0.01)

    def _on_zygote_event(self, ev: tuple) -> None:
        if self.stopped.is_set():  # the daemon is stopping: its workers die on purpose
            return
        kind = ev[0]
        if kind == "forked":
            p = self.procs.forked(ev[1], ev[2])
            if p is None:
                if self.zygote is not None:
                    self.zygote.kill(ev[2])  # the zygote's child, not wanted any more
                return
            if p.early is not None:
                c, msg = p.early
                p.early = None
                if c.conn in self._clients:
                    self._on_register_worker(c, msg)
        elif kind == "failed":
            p = self.procs.fork_failed(ev[1])
            if p is not None:
                log.error("could not start a worker: %s", ev[2])
                self._start_failed(p.env)
        elif kind == "exit":
            p, was_starting = self.procs.exited(ev[1], self._describe(ev[2]))
            if p is None:
                return
            if was_starting:
                log.warning("worker process %d %s before it registered with this daemon; "
                            "starting another", p.pid, p.reason)
                self._start_failed(p.env)
            else:
                ev_ = self._exit_events.get(p.worker_id)
                if ev_ is not None:
                    ev_.set()
                self._answer(p)

    def _describe(self, status: int) -> str:
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            before, self._oom = self._oom, oom_kills()
            return describe_exit(status, before, self._oom)
        return describe_exit(status, None, None)

    def _start_failed(self, env: str | None = None) -> None:
        """One start failed (lock held): the scheduler may spawn again, after a pause once
        starts keep failing (a worker that cannot start must not spin the machine)."""
        self._failed_starts += 1
        over = self._failed_starts - self.FAILED_STARTS_OK
        if over <= 0:
            self._execute(self.sched.worker_failed_to_start(env))
            return
        t = threading.Timer(min(0.05 * 2 ** over, 5.0), self._start_failed_later, (env,))
        t.daemon = True
        t.start()

    def _start_failed_later(self, env: str | None) -> None:
        with self._lock:
            if not self.stopped.is_set():
                self._execute(self.sched.worker_failed_to_start(env))

    def _replace_zygote(self, old: Zygote) -> Zygote | None:
        """The zygote's pipe closed: reap it; unless we are stopping, start a fresh one."""
        with self._lock:
            if self.zygote is old:
                self.zygote = None
            stopping = self.stopped.is_set()
            if not stopping:
                failed, died = self.procs.fork_server_lost(
                    f"killed with the worker fork server (pid {old.pid}), which died")
                for p in died:
                    ev = self._exit_events.get(p.worker_id)
                    if ev is not None:
                        ev.set()
                    self._answer(p)
                for p in failed:
                    self._start_failed(p.env)
        old.stop()
        if stopping:
            return None
        # Zygotes that keep dying soon after they started are replaced more and more slowly.
        quick = time.monotonic() - old.started < 30
        self._quick_deaths = self._quick_deaths + 1 if quick else 0
        delay = 0.0 if self._quick_deaths < 2 else min(0.5 * 2 ** (self._quick_deaths - 2), 30.0)
        log.error("the worker fork server (pid %d) died; starting a new one%s", old.pid,
                  f" in {delay:g}s" if delay else "")
        while not self.stopped.wait(delay):
            try:
                new = Zygote.start((self.listener.address, self.listener.token,
                                    self.session_dir, self.node_id))
                break
            except OSError as e:
                delay = min(max(0.5, 2 * delay), 30.0)
                log.error("could not start a worker fork server: %s; retrying in %gs", e, delay)
        else:
            return None
        with self._lock:
            if self.stopped.is_set():
                self.zygote = None
            else:
                self.zygote = new
                for p in self.procs.unsent():
                    p.sent = new.spawn(p.worker_id, p.env)
                return new
        new.stop()
        return None

