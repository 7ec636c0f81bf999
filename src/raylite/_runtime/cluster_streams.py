"""Streaming generator tasks on a cluster: the owner's I/O around the core's streams.

    f.remote() (a generator) ─► submit_stream: PushTask(stream=backpressure), one return id
                                (the completion); core.streams.open before the push is sent
                                (its first items may come at once) ─► ObjectRefGenerator
    worker ──StreamItem──► _stream_item ─► core.streams.item: the entry completes, waiters wake
    worker ──TaskDone───► the completion completes (any other end too: crash, cancel, death)
                          ─► the stream is over (core: ended)
    next(gen) waiting     ─► _stream_wait: the next item's entry, as get() waits for a ref
                             (reading the task's connection itself when it may: _read_for)
    backpressure          ─► _stream_ack: StreamConsumed to the worker on the general channel
                             (the worker's task thread is busy in the generator); a dropped
                             generator's worker is told by the maintenance thread
                             (_flush_stream_drops), never from inside a destructor

Messages: _protocol/messages_streams.py. The worker's side: _worker/streams.py.
"""
from __future__ import annotations

from typing import Any

from .. import _ids
from .._core.owner import Task
from .._protocol import messages as m
from .._protocol.messages_streams import StreamConsumed, StreamItem
from ..exceptions import GetTimeoutError
from .generator import ObjectRefGenerator
from .object_ref import ObjectRef
from .streams import StreamConsumer


class ClusterStreams(StreamConsumer):
    """Methods of ClusterRuntime for streaming generator tasks."""

    def _streams_connect(self) -> None:
        self._stream_drops: list = []  # (worker, task id): told by the maintenance thread
        self._core.streams.end_data = self.encode(None, b"", self.address)[0]
        self.endpoint.on(StreamItem, self._stream_item)

    # -- submission ----------------------------------------------------------------
    def submit_stream(self, function: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        _, _, fid, name, env, demand, key, strategy, group, renv, given, _ = self._template(function, options)
        data, inlined, deps, hold = self._prepare_args(args, kwargs)
        task_id, done = _ids.new_id(), _ids.new_id()
        bp = options.generator_backpressure
        events = options.enable_task_events and self._events_on
        msg = m.PushTask(task_id, fid, None, data, inlined, (done,), name, self.job_id,
                         self.namespace, env, (), demand, self.address, options.max_calls,
                         (), group, 0, events, stream=bp, given_env=given)
        task = Task(task_id, msg, (done,), name, options.max_retries, options.retry_exceptions,
                    hold, None, key, strategy, events=events, env=renv,
                    locality=not strategy and group is None)
        with self._lock:  # the stream opens before the push goes: its first items may come at once
            out = self._core.tasks.submit(task, deps, [r._id for r in hold] if deps else None)
            ref = ObjectRef(done, self.address, self)
            out += self._core.streams.open(task_id, done, bp)
        self._send_all(out)
        if events:
            self._note_sent()
        return self._opened(task_id, ref, options.num_returns)

    def submit_actor_stream(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                            options: Any) -> Any:
        data, inlined, _, hold = self._prepare_args(args, kwargs)
        task_id, done = _ids.new_id(), _ids.new_id()
        bp = options.generator_backpressure
        events = options.enable_task_events and self._events_on
        msg = m.PushActorTask(task_id, actor_id, method, data, inlined, (done,), self.address,
                              options.concurrency_group, 0, events, stream=bp)
        task = Task(task_id, msg, (done,), method, None, options.retry_exceptions, hold, actor_id,
                    events=events)
        with self._lock:
            out = self._core.actors.submit(task, options.max_task_retries)
            ref = ObjectRef(done, self.address, self)
            out += self._core.streams.open(task_id, done, bp)
        if out:
            self._send_all(out)
        self._flush_actor(actor_id)
        if events:
            self._note_sent()
        return self._opened(task_id, ref, options.num_returns)

    def _opened(self, task_id: bytes, done: ObjectRef, num_returns: str) -> Any:
        gen = ObjectRefGenerator(self, task_id, done)
        return self.stream_dynamic(gen) if num_returns == "dynamic" else gen

    # -- items -------------------------------------------------------------------------
    def _stream_item(self, conn: Any, msg: StreamItem) -> None:
        if type(msg.task_id) is not bytes or type(msg.index) is not int or msg.index < 0:
            return  # malformed: nothing changes
        streams = self._core.streams
        with self._lock:
            out = streams.item(msg.task_id, msg.index, msg.data)
            acks = None
            if streams.acks:
                acks, streams.acks = streams.acks, []
        if out:
            self._send_all(out)
        if acks:  # a retried task's worker counts from 0 again
            for task_id, consumed in acks:
                self._stream_ack(task_id, consumed)

    def _stream_wait(self, task_id: bytes, id: bytes, timeout: float | None) -> None:
        probe = ObjectRef(id, self.address, self)
        if timeout is None and self.executor is None and self._read_for(probe):
            return
        if not self._await([probe], 1, timeout):
            raise GetTimeoutError(f"No item of the generator came within {timeout}s.")

    def _fulfil(self, id: bytes, value: Any, error: Any) -> None:
        data = contained = None
        if error is None:
            data, contained = self.encode(value, id, self.address)
        with self._lock:
            out = self._core.complete(id, data, error, True)
            if contained:
                self._objects.keep(id, contained)
        self._send_all(out)

    # -- backpressure ----------------------------------------------------------------
    def _stream_ack(self, task_id: bytes, consumed: int) -> None:
        with self._lock:
            worker = self._core.streams.running_on(task_id)
        if worker is not None:
            self._tell_worker(worker, StreamConsumed(task_id, consumed))

    def _stream_closed(self, task_id: bytes, worker: str | None) -> None:
        if worker is not None:
            self._stream_drops.append((worker, task_id))

    def _flush_stream_drops(self) -> None:
        drops, self._stream_drops = self._stream_drops, []
        for worker, task_id in drops:
            self._tell_worker(worker, StreamConsumed(task_id, -1))

    def _tell_worker(self, worker: str, msg: Any) -> None:
        try:
            self._peer(worker).send(msg)  # general channel: read by the worker's reader thread
        except (ConnectionError, OSError):
            pass  # the worker is gone: its stream ends with the task
