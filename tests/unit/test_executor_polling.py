"""The worker's main loop polls a quick caller's connection, but not forever (task_executor.py)."""
import socket
import threading
import time

from raylite._protocol import messages as m
from raylite._protocol.rpc import Endpoint
from raylite._protocol.transport import Connection
from raylite._worker.task_executor import Executor


class _Runtime:
    """Just what the executor's loop touches for a message it routes to a handler."""

    def __init__(self, order):
        self.endpoint = Endpoint()
        self.endpoint.on(m.AddBorrower, self._record)
        self.order = order

    def _record(self, conn, msg):
        self.order.append(msg.object_id)
        if len(self.order) % 10 == 0:
            time.sleep(0.0001)  # messages take a moment, as real calls would

    def inbound_closed(self, conn):
        pass


def test_a_flooding_caller_does_not_starve_another_connection():
    order = []
    ex = Executor(_Runtime(order))
    pairs = [socket.socketpair() for _ in range(2)]
    busy, other = (Connection(a, "peer") for a, _ in pairs)
    senders = [Connection(b, "worker") for _, b in pairs]
    ex.add_connection(busy)
    ex.add_connection(other)
    loop = threading.Thread(target=ex.run_forever)
    loop.start()
    try:
        busy.answered = time.perf_counter()  # its caller has been answering at once
        flood = threading.Thread(target=senders[0].send_many,
                                 args=([m.AddBorrower(b"a")] * 12000,))
        flood.start()  # more than the socket holds: the sender blocks until the loop reads
        deadline = time.monotonic() + 30
        while not order and time.monotonic() < deadline:
            time.sleep(0.001)
        senders[1].send(m.AddBorrower(b"b"))  # the flood is being served
        sent_at = len(order)
        while len(order) < 12001 and time.monotonic() < deadline:
            time.sleep(0.01)
        flood.join(10)
        assert len(order) == 12001
        # one read takes up to 64 KiB of frames (about 2,500 of these): the other
        # connection waits for two such reads at most (the one being served, and the
        # flood's next if it comes first in the next select), not for the whole flood
        waited = order.index(b"b") - sent_at
        assert waited < 6000, f"the second connection waited for {waited} of the flood's messages"
    finally:
        ex.stop()
        loop.join(10)
        for c in (busy, other, *senders):
            c.close()


def test_a_task_delivered_on_another_thread_runs_on_the_loop_thread():
    rt = _Runtime([])
    rt.register_inbound = lambda owner, conn: None
    ex = Executor(rt)
    ran = []
    ex.run_task = lambda conn, msg: ran.append(threading.get_ident())
    loop = threading.Thread(target=ex.run_forever)
    loop.start()
    try:
        push = m.PushTask(b"t" * 16, b"f" * 16, None, b"", {}, (), "f", b"job1", "ns", None, (),
                          {}, "127.0.0.1:1")
        rt.endpoint.deliver(None, push)   # as a general connection's reader thread would
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.001)
        assert ran == [loop.ident]
    finally:
        ex.stop()
        loop.join(10)
