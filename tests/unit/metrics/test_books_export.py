"""Two workers' books, each joined on its own partition and merged on the master, equal one process's books."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.metrics.books import books_from_logs
from simulator.metrics.books_export import books_export, merge_books
from simulator.records import ArrivalRecord, SendRecord

T0 = 1_700_000_000.0


def _sends() -> list[SendRecord]:
    out = []
    for k in range(400):
        at = T0 + k / 50
        device = f"d{k % 8}"
        status = "Acknowledged" if k % 2 == 0 else "Failure"
        out.append(SendRecord(key=(device, f"u{k // 2}", status, 0, 0), intended=at - 0.001, sent=at,
                              t_ms=round(at * 1000), acked=at + 0.002, code="" if k % 2 == 0 else "Canceled"))
    return out


def _books(tmp: Path, sends: list[SendRecord], arrivals: list[ArrivalRecord]) -> dict[str, object]:
    books = books_from_logs(tmp, T0, sends)
    books.offer_arrivals(arrivals)
    export = books_export(books, end=T0 + 10, grace=5.0, cut=frozenset())
    return json.loads(json.dumps(export))  # as the Locust message carries it


def test_merged_partitions_equal_the_whole(tmp_path: Path) -> None:
    sends = _sends()
    arrivals = [ArrivalRecord(r.key, (r.sent or 0) + 0.01, r.t_ms, code=r.code) for i, r in enumerate(sends)
                if i % 37 != 5]
    whole = merge_books([_books(tmp_path / "one", sends, arrivals)], T0, T0 + 10, 5.0)
    parts = []
    for worker in range(2):
        mine = {f"d{i}" for i in range(8) if i % 2 == worker}
        parts.append(_books(tmp_path / f"w{worker}", [r for r in sends if r.key[0] in mine],
                            [a for a in arrivals if a.key[0] in mine]))
    merged = merge_books(parts, T0, T0 + 10, 5.0)
    assert whole.accounting is not None and merged.accounting is not None
    a, b = whole.accounting.to_summary(), merged.accounting.to_summary()
    assert (b.planned, b.delivered, b.lost, b.lost_reasons) == (a.planned, a.delivered, a.lost, a.lost_reasons)
    assert b.lost == sum(1 for i in range(400) if i % 37 == 5) > 0
    assert sorted(b.lost_events) == sorted(a.lost_events)
    assert merged.accounting.histograms().summary_ms() == whole.accounting.histograms().summary_ms()
    assert merged.funnel.to_summary() == whole.funnel.to_summary()
    assert len(merged.logs) == 2 and all(p.exists() for pair in merged.logs for p in pair)
