"""The collector's arrival log on disk: pages by row index across checkpoints, numbering in bounded memory."""

from __future__ import annotations

from pathlib import Path

from simulator.backend.arrival_spool import CHECKPOINT, KEPT_OPERATIONS, ArrivalSpool, RecentKeyBook
from simulator.events import KeyBook
from simulator.outputs.csv_logs import read_arrival_log
from simulator.records import ArrivalRecord

T0 = 1_700_000_000.0


def _arrival(i: int) -> ArrivalRecord:
    return ArrivalRecord(key=(f"d{i % 7}", f"u{i}", "Acknowledged", 0, 0), arrival=T0 + i / 1000, t_ms=i, code="")


def test_pages_read_back_from_disk_equal_what_was_appended(tmp_path: Path) -> None:
    spool = ArrivalSpool(tmp_path / "collector" / "events.arrivals.csv")
    memory = ArrivalSpool(None)
    n = CHECKPOINT * 3 + 17
    for i in range(n):
        spool.append(_arrival(i))
        memory.append(_arrival(i))
    assert spool.count == n and not spool._rows  # nothing of the rows is held in memory
    for since in (0, 1, CHECKPOINT - 1, CHECKPOINT, 2 * CHECKPOINT + 5, n - 1, n, n + 10):
        assert spool.read(since) == memory.read(since), since
    assert spool.read(CHECKPOINT + 3, limit=5) == [_arrival(i) for i in range(CHECKPOINT + 3, CHECKPOINT + 8)]
    assert read_arrival_log(tmp_path / "collector" / "events.arrivals.csv") == memory.read(0)  # a CSV as any


def test_recent_key_book_numbers_as_key_book_and_forgets_old_operations() -> None:
    whole, recent = KeyBook(), RecentKeyBook()
    events = [("d0", f"u{op}", status, 0) for op in range(3) for status in ("Acknowledged", "Error", "Error")]
    for event in events:
        assert recent.key(*event) == whole.key(*event)
    for op in range(3, 3 + KEPT_OPERATIONS):
        recent.key("d0", f"u{op}", "Acknowledged", 0)
    assert len(recent._ops["d0"]) == KEPT_OPERATIONS  # u0..u2 forgotten: memory per device is bounded
    assert recent.key("d0", "u0", "Error", 0)[4] == 0  # numbered afresh: same key as the original (a duplicate)
