"""Who may see the dashboard: holders of the cluster token, by a session cookie.

    CLI prints  http://127.0.0.1:P/login?code=<one-time code>
        GET /login?code=C   ─► redeem(C): equal (constant time) to the unused code? ─► new session
        POST /login token=T ─► check_token(T): equal (constant time) to the cluster token? ─► new session
    new session ─► Set-Cookie: raylite_dashboard=<32 random bytes>; HttpOnly; SameSite=Strict; Path=/
    every other request ─► session_ok(cookie) or 401 / a redirect to the login form
    GET /metrics ─► token_ok(the "Authorization: Bearer <token>" header) or session_ok(cookie),
                    else 401 (a Prometheus scraper sends the token on every request)

The one-time code is random (not the token), works once and expires after CODE_TTL_S;
after that the login form takes the cluster token (`raylite start` prints it). Sessions
are kept by the SHA-256 of their cookie (a lookup leaks no timing about the cookie
itself), at most MAX_SESSIONS of them (the oldest is dropped first) for SESSION_TTL_S each,
so the table is bounded. Pure of I/O: the caller passes the time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

COOKIE = "raylite_dashboard"
CODE_TTL_S = 24 * 3600.0
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 64


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class Auth:
    def __init__(self, token_hex: str, now: float):
        if not token_hex:
            raise ValueError("the dashboard needs the cluster token: none was found")
        self._token = _digest(token_hex.strip().lower())
        self.code = secrets.token_urlsafe(24)
        self._code_digest: bytes | None = _digest(self.code)
        self._code_expires = now + CODE_TTL_S
        self._sessions: OrderedDict[bytes, float] = OrderedDict()  # digest -> expiry

    def redeem(self, code: str, now: float) -> str | None:
        """A new session cookie for the one-time code (then the code is spent), else None."""
        if self._code_digest is None or now > self._code_expires:
            return None
        if not hmac.compare_digest(_digest(code), self._code_digest):
            return None
        self._code_digest = None
        return self._new_session(now)

    def check_token(self, token: str, now: float) -> str | None:
        """A new session cookie for the cluster token (hex, any case), else None."""
        if not self.token_ok(token):
            return None
        return self._new_session(now)

    def token_ok(self, token: str) -> bool:
        """Whether `token` is the cluster token (hex, any case), compared in constant time.
        No session is made: a scraper (Authorization: Bearer) proves it on every request."""
        return hmac.compare_digest(_digest(token.strip().lower()), self._token)

    def session_ok(self, cookie: str | None, now: float) -> bool:
        if not cookie:
            return False
        key = _digest(cookie)
        expires = self._sessions.get(key)
        if expires is None:
            return False
        if now > expires:
            del self._sessions[key]
            return False
        return True

    def end_session(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(_digest(cookie), None)

    def _new_session(self, now: float) -> str:
        cookie = secrets.token_urlsafe(32)
        self._sessions[_digest(cookie)] = now + SESSION_TTL_S
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return cookie


def cookie_header(value: str, max_age: int = int(SESSION_TTL_S)) -> str:
    return f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"


def cookie_of(header: str | None) -> str | None:
    """The dashboard's cookie from a Cookie header, or None."""
    if not header:
        return None
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value
    return None
