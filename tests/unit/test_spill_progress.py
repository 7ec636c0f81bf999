"""Spilling progress (_node/spill_progress.py): what the node's _spill reports while it
copies, and how `raylite status` shows it; without a cluster (the copy is a fake)."""
from raylite._core.records import NodeRecord, SpillRecord
from raylite._node import objects
from raylite._node.objects import ObjectStoreHandlers
from raylite._node.spill_progress import SpillProgress
from raylite.cli.status import format_spilling

MiB = 2**20


class _Node(ObjectStoreHandlers):
    def __init__(self):
        self.node_id, self.spill_dir = b"\x01" * 16, "/nonexistent"
        self.spill_progress = SpillProgress()


def test_progress_while_a_batch_is_copied_then_the_totals(monkeypatch):
    node = _Node()
    seen = []

    def fake_spill(src, dst, oid, size):
        seen.append(node.spill_progress.record())
        if oid == b"gone":
            return False            # not there any more: stays out of the counts
        return True
    monkeypatch.setattr(objects.spill, "spill", fake_spill)
    victims = [(b"a", 10 * MiB), (b"gone", 5 * MiB), (b"b", 30 * MiB)]
    kept, error = node._spill(victims)
    assert kept == [b"gone"] and error is None
    assert seen == [SpillRecord(3, 45 * MiB, 0, 0, 0, 0),
                    SpillRecord(3, 45 * MiB, 1, 10 * MiB, 1, 10 * MiB),
                    SpillRecord(3, 45 * MiB, 1, 10 * MiB, 1, 10 * MiB)]
    assert node.spill_progress.record() == SpillRecord(0, 0, 0, 0, 2, 40 * MiB, 0)


def test_a_failed_copy_ends_the_batch_and_is_counted(monkeypatch):
    node = _Node()

    def full_disk(src, dst, oid, size):
        if oid == b"b":
            raise OSError(28, "No space left on device")
        return True
    monkeypatch.setattr(objects.spill, "spill", full_disk)
    kept, error = node._spill([(b"a", MiB), (b"b", MiB), (b"c", MiB)])
    assert kept == [b"b", b"c"] and error.errno == 28
    assert node.spill_progress.record() == SpillRecord(0, 0, 0, 0, 1, MiB, 1)


def test_status_shows_the_copies_under_way_and_the_totals():
    node = NodeRecord("n", "a", "h", True, True, {}, {})
    assert format_spilling([node]) == []
    busy = node._replace(spill=SpillRecord(4, 400 * MiB, 1, 100 * MiB, 7, 700 * MiB))
    one = node._replace(spill=SpillRecord(1, MiB, 0, 0, 1, MiB))
    assert format_spilling([one]) == [
        "spilling to disk now: 0 of 1 object, 0.0 of 1.0 MiB copied (0 %)",
        "spilled since start: 1 object, 1.0 MiB"]
    assert format_spilling([busy]) == [
        "spilling to disk now: 1 of 4 objects, 100.0 of 400.0 MiB copied (25 %)",
        "spilled since start: 7 objects, 700.0 MiB"]
    failed = node._replace(spill=SpillRecord(0, 0, 0, 0, 2, 3 * MiB, 1))
    assert format_spilling([failed, node._replace(alive=False, spill=busy.spill)]) == [
        "spilled since start: 2 objects, 3.0 MiB; 1 spill copy failed (see the daemon's log)"]
