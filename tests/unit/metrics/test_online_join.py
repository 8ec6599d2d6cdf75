"""The online join: bounded tables on a virtual clock, and the same outcomes as a join of the whole logs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from simulator.metrics import names
from simulator.metrics.accounting import account, accounting_of
from simulator.metrics.books import RunBooks
from simulator.metrics.online_join import JoinWindows, OnlineJoin
from simulator.records import ArrivalRecord, SendRecord

T0 = 1_700_000_000.0
WINDOWS = JoinWindows(ack_timeout_s=10.0, grace_s=5.0, hold_s=1.0, remember_s=20.0)


def _send(k: int, device: str = "d0", sent: float | None = None, acked: bool = True) -> SendRecord:
    at = T0 + k if sent is None else sent
    return SendRecord(key=(device, "op", "Downloading", k, 0), intended=at - 0.001, sent=at, t_ms=round(at * 1000),
                      acked=at + 0.002 if acked else None)


def _arrive(rec: SendRecord, delay: float = 0.01) -> ArrivalRecord:
    assert rec.sent is not None
    return ArrivalRecord(key=rec.key, arrival=rec.sent + delay, t_ms=rec.t_ms)


def test_an_arrival_evicts_its_event_and_old_keys_are_forgotten() -> None:
    join = OnlineJoin(T0, WINDOWS)
    rec = _send(0)
    join.add_send(rec)
    join.on_ack(rec)
    join.add_arrival(_arrive(rec))
    join.tick(T0 + 0.5)  # the arrival is younger than hold_s: not joined yet
    assert join.totals().in_flight == 1 and join.totals().held == 1
    join.tick(T0 + 2)
    assert (join.totals().in_flight, join.totals().held, join.delivered) == (0, 0, 1)
    join.tick(T0 + 30)  # past remember_s: nothing of the event is left in memory
    assert join.totals().recent == 0


def test_ack_timeout_evicts_to_unmatched_and_a_late_arrival_still_matches() -> None:
    join = OnlineJoin(T0, WINDOWS)
    unacked = _send(0, acked=False)
    join.add_send(unacked)
    join.tick(T0 + 9)
    assert join.totals().in_flight == 1
    join.tick(T0 + 11)  # sent 11 s ago, no ack: ack timeout
    assert (join.totals().in_flight, join.totals().unmatched) == (0, 1)
    join.add_arrival(_arrive(unacked, delay=11.5))
    join.tick(T0 + 13)
    assert (join.totals().unmatched, join.delivered) == (0, 1)
    acc = accounting_of(join, end=T0 + 20, grace=5)
    assert acc.lost == 0 and acc.delivered == 1


def test_grace_evicts_an_acked_event_and_it_ends_lost_with_its_reason() -> None:
    join = OnlineJoin(T0, WINDOWS)
    vanished, kept = _send(0), _send(1)
    for rec in (vanished, kept):
        join.add_send(rec)
        join.on_ack(rec)
    join.add_arrival(_arrive(kept))
    join.tick(T0 + 4)
    assert (join.totals().in_flight, join.totals().unmatched) == (1, 0)
    join.tick(T0 + 6)  # acked 6 s ago, unseen: past grace
    assert (join.totals().in_flight, join.totals().unmatched) == (0, 1)
    acc = accounting_of(join, end=T0 + 10, grace=5)
    assert acc.lost_events == [(vanished.key, names.LOST_ACKED_NOT_ARRIVED)]
    assert acc.lost_when == [vanished.sent]
    assert acc.delivered == 1 and acc.acked == 2


def test_online_with_ticks_equals_the_join_of_whole_logs() -> None:
    rng = np.random.default_rng(3)
    sends, arrivals = [], []
    for k in range(3000):
        rec = _send(k, device=f"d{k % 30}", sent=T0 + k / 100)
        if k % 97 == 5:
            rec.acked = None
        sends.append(rec)
        if k % 89 != 3:
            arrivals.append(_arrive(rec, delay=float(rng.exponential(0.05))))
    arrivals.append(_arrive(sends[10], delay=0.7))  # a duplicate
    batch = account(sends, arrivals, end=T0 + 31, grace=5, start=T0)
    join = OnlineJoin(T0, WINDOWS)
    by_time = sorted(arrivals, key=lambda a: a.arrival)
    j = 0
    for rec in sends:  # play the run: sends as they leave, arrivals as the observer sees them, a tick a second
        assert rec.sent is not None
        while j < len(by_time) and by_time[j].arrival <= rec.sent:
            join.add_arrival(by_time[j])
            j += 1
        join.add_send(rec)
        join.on_ack(rec)
        join.tick(rec.sent)
        assert join.totals().in_flight < 1000  # bounded by the windows, not by the 3,000 events
    for arr in by_time[j:]:
        join.add_arrival(arr)
    online = accounting_of(join, end=T0 + 31, grace=5)
    assert online.to_summary() == batch.to_summary()
    assert online.histograms().summary_ms() == batch.histograms().summary_ms()
    assert {s: b.counts for s, b in online.seconds.items()} == {s: b.counts for s, b in batch.seconds.items()}


def test_books_stream_the_send_log_as_records_complete(tmp_path: Path) -> None:
    books = RunBooks(tmp_path / "spool", T0, join=False)
    first, second = _send(0, acked=False), _send(1, acked=False)
    books.on_send(first)
    books.on_send(second)
    second.acked = T0 + 1.01
    books.on_ack(second)
    books.tick(None)
    books._sent_file.flush()  # type: ignore[union-attr]
    with books.sent_path.open() as f:
        assert [row[3] for row in csv.reader(f)][1:] == ["1"]  # the acked one is on disk, the other one waits
    books.close(T0 + 5, 1.0)
    with books.sent_path.open() as f:
        rows = list(csv.reader(f))[1:]
    assert [row[3] for row in rows] == ["1", "0"] and rows[1][8] == ""  # never acked: written at close


def test_folding_finished_operations_keeps_the_funnel_and_frees_them() -> None:
    from simulator.metrics.funnel import FunnelBuilder

    events = []
    for op in range(50):
        start = T0 + op
        events.append(((f"d{op % 5}", f"u{op}", "Acknowledged", 0, 0), start + 0.1, ""))
        if op % 10 != 9:  # every tenth stays open (stuck)
            status, code = ("Success", "") if op % 3 else ("Failure", "Canceled")
            events.append(((f"d{op % 5}", f"u{op}", status, 0, 0), start + 0.4, code))
    starts = {(f"d{op % 5}", f"u{op}"): T0 + op for op in range(50)}
    whole = FunnelBuilder(starts)
    live = FunnelBuilder(starts)
    for key, when, code in events:
        whole.add(key, when, code)
        live.add(key, when, code)
        live.fold(when - 5.0)  # fold what finished 5 s ago, as the books' tick does
    assert len(live.ops) < 15  # only the recent and the open operations are kept
    assert live.build().to_summary() == whole.build().to_summary()
