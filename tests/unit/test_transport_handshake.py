"""The handshake and the Listener (handshake.py, listener.py), in one process.

Each side must prove the token before anything is unpickled; handshakes run side by side
with one deadline each and per-peer caps; refusals are logged with a rate limit.
"""
import logging
import os
import pickle
import socket
import threading
import time

import pytest

from raylite._protocol import handshake, transport
from raylite._protocol.listener import Listener
from raylite._protocol.transport import AuthenticationError, connect

TOKEN = b"t" * 32


@pytest.fixture
def listen():
    """listen(**options) -> a Listener on 127.0.0.1 whose accept() runs in a thread;
    accepted connections land in .accepted. Closed at the end."""
    made = []

    def make(**options):
        lst = Listener("127.0.0.1", 0, options.pop("token", TOKEN), **options)
        lst.accepted = []
        lst.thread = threading.Thread(target=_accept_all, args=(lst,), daemon=True)
        lst.thread.start()
        made.append(lst)
        return lst
    yield make
    for lst in made:
        lst.close()
        lst.thread.join(5)
        for c in lst.accepted:
            c.close()


def _accept_all(lst):
    while True:
        try:
            lst.accepted.append(lst.accept())
        except OSError:
            return


def _wait(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


@pytest.fixture(params=["unix", "tcp"])
def via(request, monkeypatch):
    if request.param == "tcp":
        monkeypatch.setattr(transport, "dial_unix", lambda address: None)
    return request.param


def test_both_sides_prove_the_token_then_messages_flow(listen, via):
    lst = listen()
    for channel in (b"g", b"t"):
        conn = connect(lst.address, TOKEN, channel=channel)
        assert _wait(lambda: len(lst.accepted) == 1 + (channel == b"t"))
        server = lst.accepted[-1]
        assert server.channel == channel
        assert server.peer.startswith("unix:" if via == "unix" else "127.0.0.1:")
        conn.send({"hello": channel})
        assert server.recv() == {"hello": channel}
        conn.close()
    assert lst.refusals == 0


def test_a_client_with_another_token_is_refused_and_told(listen, via):
    lst = listen()
    with pytest.raises(AuthenticationError, match="refused this process's cluster token"):
        connect(lst.address, b"x" * 32)
    assert _wait(lambda: lst.refusals == 1) and lst.accepted == []


def _fake_server(reply):
    """A server that greets like raylite, then sends reply(server nonce, client's answer)."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        c, _ = srv.accept()
        with c:
            nonce = os.urandom(16)
            c.sendall(handshake.MAGIC + nonce)
            answer = b""
            while len(answer) < handshake.ANSWER:
                answer += c.recv(handshake.ANSWER - len(answer))
            c.sendall(reply(nonce, answer))
            try:
                c.recv(1)  # until the client hangs up
            except OSError:
                pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, "127.0.0.1:%d" % srv.getsockname()[1]


class _Canary:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("how", ["no proof", "guessed proof", "reflected client proof",
                                 "proof for other nonces"])
def test_a_server_that_cannot_prove_the_token_is_refused_before_anything_is_loaded(tmp_path, how, monkeypatch):
    monkeypatch.setattr(transport, "dial_unix", lambda address: None)
    canary = str(tmp_path / "canary")
    evil = pickle.dumps(_Canary(canary), 2)
    frame = len(evil).to_bytes(4, "big") + evil

    def reply(nonce, answer):
        client_nonce, channel, client_proof = answer[:16], answer[16:17], answer[17:]
        proof = {"no proof": b"",
                 "guessed proof": os.urandom(32),
                 "reflected client proof": client_proof,
                 "proof for other nonces": handshake.proof(TOKEN, handshake.SERVER_LABEL, os.urandom(16),
                                                           client_nonce, channel)}[how]
        return b"OK" + proof + frame
    srv, t, address = _fake_server(reply)
    try:
        with pytest.raises(AuthenticationError, match="did not prove it knows the cluster token"):
            connect(address, TOKEN, timeout=5)
    finally:
        t.join(5)
        srv.close()
    assert not os.path.exists(canary)


def test_the_proofs_bind_both_nonces_the_channel_and_the_side():
    a, b = os.urandom(16), os.urandom(16)
    base = handshake.proof(TOKEN, handshake.CLIENT_LABEL, a, b, b"g")
    assert base != handshake.proof(TOKEN, handshake.SERVER_LABEL, a, b, b"g")
    assert base != handshake.proof(TOKEN, handshake.CLIENT_LABEL, b, a, b"g")
    assert base != handshake.proof(TOKEN, handshake.CLIENT_LABEL, a, b, b"t")
    assert base != handshake.proof(b"u" * 32, handshake.CLIENT_LABEL, a, b, b"g")


def test_a_squatted_unix_name_leaves_the_listener_on_tcp(caplog, monkeypatch):
    port = _free_port()
    squat = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squat.bind(transport.unix_path(f"127.0.0.1:{port}"))
    squat.listen(1)
    with caplog.at_level(logging.WARNING, "raylite.transport"):
        lst = Listener("127.0.0.1", port, TOKEN)
    squat.close()
    try:
        assert lst.usock is None and "TCP only" in caplog.text
        t = threading.Thread(target=lambda: lst.accept().close(), daemon=True)
        t.start()
        connect(lst.address, TOKEN).close()
        t.join(5)
        assert not t.is_alive()
    finally:
        lst.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _idle(address, n, kind="tcp"):
    out = []
    for _ in range(n):
        if kind == "tcp":
            s = socket.create_connection(transport.split_address(address))
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(transport.unix_path(address))
        s.settimeout(5)
        out.append(s)
    return out


def _closed_by_server(s):
    """Whether the server has closed this socket (after its greeting, if it sent one)."""
    try:
        while True:
            data = s.recv(64)
            if not data:
                return True
    except (socket.timeout, BlockingIOError):
        return False
    except OSError:
        return True


def test_idle_and_trickling_peers_wait_alone_and_only_until_the_deadline(listen, via):
    lst = listen(deadline=0.5)
    idle = _idle(lst.address, 20, via)
    trickler = _idle(lst.address, 1, via)[0]
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.1):
            try:
                trickler.send(b"x")
            except OSError:
                return
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        conn = connect(lst.address, TOKEN, timeout=5)   # not behind any of them
        assert _wait(lambda: len(lst.accepted) == 1)
        conn.close()
        # the trickler too, though it never stays silent for long: one deadline for it all
        assert _wait(lambda: lst.refusals == 21, timeout=5), lst.refusals
        for s in idle + [trickler]:
            s.settimeout(1)
            assert _closed_by_server(s)
    finally:
        stop.set()
        t.join(2)
        for s in idle + [trickler]:
            s.close()


def test_a_peer_over_its_cap_loses_its_oldest_pending_handshake(listen, monkeypatch):
    monkeypatch.setattr(transport, "dial_unix", lambda address: None)
    lst = listen(per_peer=4)
    idle = _idle(lst.address, 10)
    try:
        assert _wait(lambda: lst.refusals == 6)
        for s in idle:
            s.settimeout(0.3)
        assert [_closed_by_server(s) for s in idle] == [True] * 6 + [False] * 4
        connect(lst.address, TOKEN).close()  # a new one evicts the oldest, and completes
        assert _wait(lambda: len(lst.accepted) == 1)
    finally:
        for s in idle:
            s.close()


def test_all_pending_handshakes_are_capped_too(listen, via):
    lst = listen(per_peer=100, max_pending=5)
    idle = _idle(lst.address, 8, via)
    try:
        assert _wait(lambda: lst.refusals == 3)
        conn = connect(lst.address, TOKEN)
        assert _wait(lambda: len(lst.accepted) == 1)
        conn.close()
    finally:
        for s in idle:
            s.close()


def test_refusals_are_logged_once_per_peer_with_a_limit_overall(listen, caplog, monkeypatch):
    monkeypatch.setattr(transport, "dial_unix", lambda address: None)
    lst = listen()
    with caplog.at_level(logging.WARNING, "raylite.transport"):
        for i in range(30):  # 30 from one peer
            with pytest.raises(AuthenticationError):
                connect(lst.address, b"x" * 32)
        for i in range(2, 40):  # one each from 38 more
            s = socket.create_connection(transport.split_address(lst.address),
                                         source_address=(f"127.0.0.{i}", 0))
            s.close()
        assert _wait(lambda: lst.refusals == 68)
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == lst.refused_log.burst
    assert "127.0.0.1" in lines[0].getMessage() and "prove" in lines[0].getMessage()
    assert "29 similar warnings held back" in lines[1].getMessage()  # the count rides along
    assert lst.refused_log.held_back == 68 - lst.refused_log.burst - 29


def test_close_wakes_accept_and_closes_pending_handshakes(via):
    lst = Listener("127.0.0.1", 0, TOKEN)
    errors = []

    def run():
        try:
            lst.accept()
        except OSError as e:
            errors.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    idle = _idle(lst.address, 3, via)
    time.sleep(0.1)
    lst.close()
    t.join(5)
    assert not t.is_alive() and errors
    for s in idle:
        assert _closed_by_server(s)
        s.close()
    with pytest.raises(OSError):
        lst.accept()


def test_connect_has_one_deadline_for_the_whole_handshake(monkeypatch):
    monkeypatch.setattr(transport, "dial_unix", lambda address: None)
    srv = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never greets
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionError, match="timed out"):
            connect("127.0.0.1:%d" % srv.getsockname()[1], TOKEN, timeout=0.3)
        assert time.monotonic() - t0 < 3
    finally:
        srv.close()
