"""What runs an actor in local mode (LocalRuntime's `_hosts`)."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from .base import ActorMeta


class _Host:
    """What runs an actor here: its instance, event loop (async actors) and call lock."""

    def __init__(self, actor_id: bytes, cls: type, meta: ActorMeta, options: Any,
                 namespace: str, args: tuple, kwargs: dict):
        self.id = actor_id
        self.cls = cls
        self.meta = meta
        self.options = options
        self.namespace = namespace
        self.args, self.kwargs = args, kwargs
        self.instance: Any = None
        self.env: dict | None = None  # its runtime_env in effect, as given (inherited: _env_of)
        self.gpu_ids: tuple = ()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: threading.Thread | None = None
        # A plain actor runs one call at a time, as on a cluster, even when several threads call it.
        serial = not meta.is_async and (options.max_concurrency or 1) == 1 \
            and not options.concurrency_groups
        self.call_lock = threading.RLock() if serial else contextlib.nullcontext()

    def stop_loop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.loop_thread is not threading.current_thread():
                self.loop_thread.join()
                self.loop.close()
            self.loop = self.loop_thread = None
