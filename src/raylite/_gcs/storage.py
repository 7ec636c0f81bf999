"""Where the GCS tables keep their records: a storage interface, and memory behind it today.

    GcsTables (tables.py) ──put / delete (write-through, every change)──► Storage
    GcsTables.load(storage) ◄──scan (rebuild after a restart)────────────┘

A storage holds named tables of bytes keys to bytes values; it knows nothing of
what they mean (tables.py encodes and decodes its records). Writes are whole
records, so a storage that persists them (a file, a database: a later issue)
can be swapped in without the tables changing; a rebuild from it gives back
the same tables (tests/unit/test_gcs_storage.py checks the round trip).

MemoryStorage keeps the bytes in dicts: a GCS with it forgets everything when
its process ends, as today. Pure: no I/O, no clock, no threads (the service's
lock guards every call).
"""
from __future__ import annotations

from abc import ABC, abstractmethod


class Storage(ABC):
    """Tables of bytes -> bytes. Every method may be called for a table never written."""

    @abstractmethod
    def get(self, table: str, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""

    @abstractmethod
    def put(self, table: str, key: bytes, value: bytes) -> None:
        """Stores `value` under `key`, replacing what was there."""

    @abstractmethod
    def delete(self, table: str, key: bytes) -> bool:
        """Removes `key`; False when it was not there."""

    @abstractmethod
    def scan(self, table: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix`, in the order they were first put."""

    def statistics(self) -> dict:
        return {}


class MemoryStorage(Storage):
    """Every table a dict in this process; gone when the process ends."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[bytes, bytes]] = {}
        self.writes = 0   # puts and deletes so far (statistics)

    def get(self, table: str, key: bytes) -> bytes | None:
        t = self._tables.get(table)
        return None if t is None else t.get(key)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        if type(key) is not bytes or type(value) is not bytes:
            raise TypeError(f"storage keys and values are bytes, not {type(key).__name__} -> "
                            f"{type(value).__name__}")
        self.writes += 1
        self._tables.setdefault(table, {})[key] = value

    def delete(self, table: str, key: bytes) -> bool:
        self.writes += 1
        t = self._tables.get(table)
        return t is not None and t.pop(key, None) is not None

    def scan(self, table: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        t = self._tables.get(table, {})
        return [(k, v) for k, v in t.items() if k.startswith(prefix)]

    def statistics(self) -> dict:
        return {"kind": "memory", "writes": self.writes,
                "records": {name: len(t) for name, t in self._tables.items()}}
