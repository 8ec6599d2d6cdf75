"""The online join's bounds (issue 14): eviction in O(evicted) with acks moving deadlines, compact unmatched
entries spilled to a file beyond a cap, late arrivals and late acks still counted exactly, and the operator told
when the observer falls behind. The outcomes are always those of a join of the whole logs (accounting.account)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.metrics import names
from simulator.metrics.accounting import account, accounting_of
from simulator.metrics.books import RunBooks
from simulator.metrics.books_export import books_export, merge_books
from simulator.metrics.online_join import JoinWindows, OnlineJoin
from simulator.metrics.unmatched_store import SPILL_FILE, UnmatchedStore
from simulator.records import ArrivalRecord, SendRecord

T0 = 1_700_000_000.0
WINDOWS = JoinWindows(ack_timeout_s=10.0, grace_s=5.0, hold_s=1.0, remember_s=20.0)


def _send(k: int, sent: float | None = None, device: str = "d0") -> SendRecord:
    at = T0 + k if sent is None else sent
    return SendRecord(key=(device, "op", "Downloading", k, 0), intended=at - 0.001, sent=at, t_ms=round(at * 1000))


def _arrival(rec: SendRecord, at: float) -> ArrivalRecord:
    return ArrivalRecord(key=rec.key, arrival=at, t_ms=rec.t_ms)


def _ack(join: OnlineJoin, rec: SendRecord, at: float) -> None:
    rec.acked = at
    join.on_ack(rec)


def test_an_ack_moves_the_deadline_from_send_plus_ack_timeout_to_ack_plus_grace() -> None:
    join = OnlineJoin(T0, WINDOWS)
    slow, quick = _send(0), _send(1)  # sent at T0 and T0 + 1
    join.add_send(slow)
    join.add_send(quick)
    _ack(join, quick, T0 + 1.002)  # acked first: its deadline T0 + 6.002 comes before slow's T0 + 10
    join.tick(T0 + 7)
    assert (join.totals().in_flight, join.totals().unmatched) == (1, 1)  # quick evicted, slow (unacked) waits
    _ack(join, slow, T0 + 8)  # its ack 8 s late: now due at T0 + 13, not at its ack timeout T0 + 10
    join.tick(T0 + 11)
    assert (join.totals().in_flight, join.totals().unmatched) == (1, 1)
    join.tick(T0 + 13.5)
    assert (join.totals().in_flight, join.totals().unmatched) == (0, 2)
    acc = accounting_of(join, end=T0 + 20, grace=5)
    assert acc.lost_events == [(slow.key, names.LOST_ACKED_NOT_ARRIVED), (quick.key, names.LOST_ACKED_NOT_ARRIVED)]
    assert acc.lost_when == [slow.sent, quick.sent] and acc.acked == 2


def test_a_record_completed_without_on_ack_is_requeued_by_its_ack_when_it_reaches_the_front() -> None:
    join = OnlineJoin(T0, WINDOWS)
    rec = _send(0)
    join.add_send(rec)
    rec.acked = T0 + 9  # the ack callback mutated it without telling the join
    join.tick(T0 + 10.5)  # past its ack timeout: re-checked, it is acked, so it waits for ack + grace
    assert join.totals().in_flight == 1
    join.tick(T0 + 14.5)
    assert (join.totals().in_flight, join.totals().unmatched) == (0, 1)
    acc = accounting_of(join, end=T0 + 20, grace=5)
    assert acc.lost_reasons[names.LOST_ACKED_NOT_ARRIVED] == 1


def test_a_tick_touches_the_expired_events_only(monkeypatch: pytest.MonkeyPatch) -> None:
    join = OnlineJoin(T0, WINDOWS)
    for k in range(2000):  # one event every 10 ms over 20 s, each acked 2 ms after its send
        rec = _send(k, sent=T0 + k / 100)
        join.add_send(rec)
        _ack(join, rec, T0 + k / 100 + 0.002)
    checked = []
    real = OnlineJoin._expired

    def counting(rec: SendRecord, now: float, w: JoinWindows) -> bool:
        checked.append(rec.key)
        return real(rec, now, w)

    monkeypatch.setattr(OnlineJoin, "_expired", staticmethod(counting))
    join.tick(T0 + 6.5)  # acked before T0 + 1.5 are past grace: 150 events
    assert join.totals().unmatched == 150 and len(checked) == 151  # the 150 and the first one still due
    checked.clear()
    join.tick(T0 + 6.6)
    assert join.totals().unmatched == 160 and len(checked) == 11


def test_an_ack_after_the_ack_timeout_turns_never_acked_into_acked_not_arrived(tmp_path: Path) -> None:
    join = OnlineJoin(T0, JoinWindows(ack_timeout_s=10.0, grace_s=5.0, unmatched_max=2), tmp_path / SPILL_FILE)
    first, second, third = _send(0), _send(1), _send(2)
    for rec in (first, second, third):
        join.add_send(rec)
    join.tick(T0 + 13)  # all evicted unacked: 3 > the cap of 2, so the oldest goes to the file
    assert (join.totals().unmatched, join.totals().spilled) == (2, 1)
    _ack(join, first, T0 + 13.5)  # spilled
    _ack(join, third, T0 + 13.6)  # in memory
    acc = accounting_of(join, end=T0 + 20, grace=5)
    assert acc.lost_events == [(first.key, names.LOST_ACKED_NOT_ARRIVED), (second.key, names.LOST_NEVER_ACKED),
                               (third.key, names.LOST_ACKED_NOT_ARRIVED)]
    assert acc.acked == 2


def test_spilled_events_match_late_arrivals_duplicates_and_resends_exactly(tmp_path: Path) -> None:
    spill = tmp_path / SPILL_FILE
    join = OnlineJoin(T0, JoinWindows(ack_timeout_s=10.0, grace_s=5.0, hold_s=1.0, remember_s=100.0,
                                      unmatched_max=3), spill)
    recs = [_send(k, sent=T0 + k / 10) for k in range(10)]
    for rec in recs:
        join.add_send(rec)
        _ack(join, rec, rec.sent + 0.002)  # type: ignore[operator]
    join.tick(T0 + 7)  # every one unseen past grace: 3 stay in memory, the 7 oldest go to the file
    assert (join.totals().unmatched, join.totals().spilled) == (3, 7) and spill.exists()
    join.add_arrival(_arrival(recs[0], T0 + 30))  # the observer is ~30 s behind
    join.add_arrival(_arrival(recs[0], T0 + 30.5))  # and re-delivers it: a duplicate, not a second delivery
    join.add_arrival(_arrival(recs[9], T0 + 31))  # one still in memory
    join.add_send(recs[4])  # the generator re-sends a spilled key: a duplicate send, the first one kept
    join.tick(T0 + 32.5)  # joins the arrivals older than hold_s
    assert (join.totals().unmatched, join.totals().spilled, join.totals().evicted_then_arrived) == (2, 6, 2)
    acc = accounting_of(join, end=T0 + 40, grace=5)
    assert (acc.delivered, acc.duplicated, acc.duplicate_sends, acc.lost, acc.planned) == (2, 1, 1, 8, 10)
    assert [key for key, _ in acc.lost_events] == [r.key for r in recs[1:9]]  # send order across memory and file
    assert acc.lost_when == [r.sent for r in recs[1:9]]
    assert not spill.exists()  # drained and dropped at finish


_event = st.tuples(
    st.floats(min_value=0.0, max_value=2.0),  # gap to the previous send, s
    st.one_of(st.none(), st.floats(min_value=0.001, max_value=14.0)),  # ack delay (None: never acked)
    st.one_of(st.none(), st.floats(min_value=0.005, max_value=25.0)),  # arrival delay (None: lost)
    st.booleans(),  # publish raised (sent None)
    st.integers(min_value=0, max_value=2),  # extra copies delivered
    st.integers(min_value=0, max_value=3),  # device
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_event, min_size=10, max_size=60), cap=st.integers(min_value=0, max_value=4),
       strangers=st.integers(min_value=0, max_value=2), spill=st.booleans(),
       tail=st.floats(min_value=0.0, max_value=40.0))
def test_online_bounded_join_equals_the_join_of_whole_logs(
        tmp_path_factory: pytest.TempPathFactory,
        events: list[tuple[float, float | None, float | None, bool, int, int]],
        cap: int, strangers: int, spill: bool, tail: float) -> None:
    sends: list[tuple[float, SendRecord]] = []  # (when the generator hands it over, record)
    arrivals: list[ArrivalRecord] = []
    acks: list[tuple[float, SendRecord]] = []
    at = T0
    for k, (gap, ack, arrive, failed, copies, device) in enumerate(events):
        at += gap
        rec = SendRecord(key=(f"d{device}", "op", "Downloading", k, 0), intended=at - 0.01,
                         sent=None if failed else at, t_ms=round(at * 1000), error="publish" if failed else None)
        sends.append((at, rec))
        if failed:
            continue
        if ack is not None:
            acks.append((at + ack, rec))
        if arrive is not None:
            arrivals.extend(ArrivalRecord(key=rec.key, arrival=at + arrive + c * 0.3, t_ms=rec.t_ms)
                            for c in range(1 + copies))
    arrivals.extend(ArrivalRecord(key=("dx", "op", "Downloading", s, 0), arrival=T0 + s, t_ms=None)
                    for s in range(strangers))
    end = at + 1.0 + tail  # the run goes on `tail` s after its last send: late arrivals join while it plays
    for when, rec in acks:
        rec.acked = when
    batch = account([rec for _, rec in sends], arrivals, end=end, grace=5.0, start=T0)

    for _, rec in acks:  # replay: the records as the generator holds them before their acks
        rec.acked = None
    # remember_s spans the run: a copy later than it would be `unexpected` online (the documented difference)
    windows = JoinWindows(ack_timeout_s=10.0, grace_s=5.0, hold_s=1.0, remember_s=1e6, unmatched_max=cap)
    path = tmp_path_factory.mktemp("spill") / SPILL_FILE if spill else None
    join = OnlineJoin(T0, windows, path)
    timeline: list[tuple[float, int, object]] = [(at, 0, rec) for at, rec in sends]
    timeline += [(when, 1, rec) for when, rec in acks]
    timeline += [(a.arrival, 2, a) for a in arrivals]
    timeline.sort(key=lambda item: (item[0], item[1]))  # stable: equal times keep the logs' order
    next_tick = T0
    for when, kind, item in timeline:
        while next_tick <= min(when, end):  # a tick a second while the run plays, as the books do
            join.tick(next_tick)
            next_tick += 1.0
        if kind == 0:
            assert isinstance(item, SendRecord)
            join.add_send(item)
        elif kind == 1:
            assert isinstance(item, SendRecord)
            item.acked = when
            join.on_ack(item)
        else:
            assert isinstance(item, ArrivalRecord)
            join.add_arrival(item)
    online = accounting_of(join, end=end, grace=5.0)
    assert online.to_summary(max_listed=10_000) == batch.to_summary(max_listed=10_000)
    assert online.lost_when == batch.lost_when
    assert online.histograms().summary_ms() == batch.histograms().summary_ms()
    assert {s: b.counts for s, b in online.items()} == {s: b.counts for s, b in batch.items()}
    assert path is None or not path.exists()


def test_the_books_say_when_the_observer_falls_behind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    books = RunBooks(tmp_path / "spool", T0, windows=WINDOWS)
    rec = _send(0)
    books.on_send(rec)
    rec.acked = T0 + 0.002
    books.on_ack(rec)
    books.tick(T0 + 6)  # unseen 6 s after its ack: evicted
    with caplog.at_level(logging.WARNING, logger="simulator.metrics.books"):
        books.tick(T0 + 7)
        assert not caplog.records  # evicted is not yet behind: it may be lost
        books.offer_arrivals([_arrival(rec, T0 + 8)])
        books.tick(T0 + 10)  # it arrived after all: the observer is behind the windows
    assert books.join is not None and books.join.totals().evicted_then_arrived == 1
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["observer behind"]
    books.close(T0 + 20, 5.0)
    assert books.join.delivered == 1 and books.join.lost == 0


def test_the_master_adds_up_the_workers_late_matches(tmp_path: Path) -> None:
    exports = []
    for worker in range(2):
        books = RunBooks(tmp_path / f"w{worker}", T0, windows=WINDOWS)
        recs = [_send(k, device=f"d{worker}") for k in range(worker + 1)]
        for rec in recs:
            books.on_send(rec)
            rec.acked = (rec.sent or 0) + 0.002
            books.on_ack(rec)
        books.tick(T0 + 8)  # every one unseen past grace
        books.offer_arrivals([_arrival(rec, T0 + 9) for rec in recs])
        books.tick(T0 + 11)
        exports.append(json.loads(json.dumps(books_export(books, T0 + 12, 5.0, frozenset()))))
    merged = merge_books(exports, T0, T0 + 12, 5.0)
    assert merged.evicted_then_arrived == 3
    assert merged.accounting is not None and (merged.accounting.delivered, merged.accounting.lost) == (3, 0)


def test_a_key_never_spilled_is_not_looked_up_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = UnmatchedStore(0, tmp_path / SPILL_FILE)
    spilled = [(f"d{k % 7}", f"u{k}", "Downloading", k % 3, 0) for k in range(2000)]
    for seq, key in enumerate(spilled):
        store.add(key, seq, T0 + seq, T0 + seq, seq % 2 == 0)
    assert store.spill() == 2000
    lookups = []
    real = store._find

    def counting(key: tuple[str, str, str, int, int]) -> object:
        lookups.append(key)
        return real(key)

    monkeypatch.setattr(store, "_find", counting)
    assert all(key in store for key in spilled)  # no false negative
    assert len(lookups) == 2000
    lookups.clear()
    assert not any((f"d{k % 7}", f"v{k}", "Downloading", 0, 0) in store for k in range(2000))
    assert len(lookups) < 20  # false positives only: ~0 at 2,000 keys in 2^25 bits
    assert [entry.seq for _, entry in store.drain()] == list(range(2000))


def test_a_spill_file_that_cannot_be_written_keeps_the_entries_in_memory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "not_a_dir").write_text("")
    store = UnmatchedStore(1, tmp_path / "not_a_dir" / SPILL_FILE)
    for seq in range(3):
        store.add(("d0", "op", "Downloading", seq, 0), seq, T0 + seq, T0 + seq, True)
    with caplog.at_level(logging.ERROR, logger="simulator.metrics.unmatched_store"):
        assert store.spill() == 0
    assert (store.in_memory, store.spilled, store.path) == (3, 0, None)
    assert "stay in memory" in caplog.text
    assert [entry.seq for _, entry in store.drain()] == [0, 1, 2]
