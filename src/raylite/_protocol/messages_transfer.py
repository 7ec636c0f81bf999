"""The messages that move objects between nodes (messages.py re-exports them; the object
plane between nodes is _node/transfer.py, its pure queue _object_store/pulls.py).

    reader ──PullObject(id, size, owner, source)──► its node daemon ──ObjectPulled──► reader
    that daemon ──ReadObject(id, size)──► the source daemon ──ObjectChunk + raw bytes──►
    reader ──ObjectCopied(id, node, at)──► the owner
    owner ──DropCopies(at, ids)──► its node daemon ──FreeObjects──► the daemon at `at`
    anyone ──GetTransferStats──► a node daemon ──TransferStats (objects pulled in, served out)
"""

from typing import NamedTuple


class PullObject(NamedTuple):
    """A reader -> its node daemon: bring an object another node holds into this node's
    shared memory (_node/transfer.py); answered once it is there (or cannot be)."""
    req: int
    object_id: bytes
    size: int                # bytes of its file
    owner: str               # its owner's address ("" unknown): the copy is accounted to it
    source: str              # the address of a node daemon that holds a copy


class ObjectPulled(NamedTuple):
    req: int
    error: str | None
    node: str                # this node's tag: the copy is at shm.segment_path(node, id)
    at: str                  # this node daemon's address, for the owner's directory


class ReadObject(NamedTuple):
    """Node daemon -> node daemon, on a connection of its own: send me this object's file.
    Answered by ObjectChunk frames, each followed on the wire by `length` raw bytes."""
    req: int
    object_id: bytes
    size: int


class ObjectChunk(NamedTuple):
    req: int
    offset: int
    length: int              # raw bytes that follow this frame (Connection.send_raw)
    error: str | None = None  # set (length 0): the object is not served, nothing follows


class GetTransferStats(NamedTuple):
    """Anyone -> a node daemon: its counts of objects pulled in and served out."""
    req: int


class TransferStats(NamedTuple):
    req: int
    stats: tuple             # (name, count) pairs


class ObjectCopied(NamedTuple):
    """A reader -> the object's owner: a copy now lives on node `node` (daemon at `at`)."""
    object_id: bytes
    node: str
    at: str


class DropCopies(NamedTuple):
    """An owner -> its node daemon: tell the daemon at `at` to free these objects' copies
    (forwarded as FreeObjects)."""
    at: str
    object_ids: tuple
