"""Answering an owner from a worker: a task's reply and an actor call's reply go out one way.

A reply to an owner that is gone (its connection closed) is dropped: there is
nobody left to deliver it to, and the worker goes on serving the others.
"""
from __future__ import annotations

from typing import Any


def send_reply(conn: Any, msg: Any) -> None:
    try:
        conn.send(msg)
    except OSError:
        pass  # the owner is gone; nothing to deliver
