"""The messages of streaming generator tasks (the rest of the vocabulary: messages.py).

    owner ──PushTask / PushActorTask(stream=backpressure)──► worker      (task channel)
    worker ──StreamItem(task, 0, value)──► owner                          (same connection,
    worker ──StreamItem(task, 1, value)──► owner                           in order, then
    worker ──TaskDone(task, (None,))──► owner: the stream is over          the TaskDone)
    owner ──StreamConsumed(task, n)──► worker     (general channel, with backpressure only:
                                                   the worker's task thread is busy yielding)

A value travels as a task result does: inline up to 100 KB, else in shared
memory under the item's id (_ids.stream_item_id), so the owner frees it like
any object it owns. Both messages are one-way and carry no request id.
"""

from typing import Any, NamedTuple


class StreamItem(NamedTuple):
    """Worker -> owner: the generator yielded its `index`-th value."""
    task_id: bytes
    index: int
    data: Any                  # inline bytes or a ShmObject, as TaskDone.results


class StreamConsumed(NamedTuple):
    """Owner -> worker: `consumed` items of the stream were taken; -1: nobody consumes any
    more (the generator was dropped), yield freely."""
    task_id: bytes
    consumed: int
