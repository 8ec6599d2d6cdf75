"""Issue 14: the process that writes the results keeps old sealed seconds on disk (metrics.second_spool), and
what it reads back equals what it would have kept in memory."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.clock import VirtualClock
from simulator.metrics import names
from simulator.metrics.accounting import accounting_of
from simulator.metrics.histograms import LatencyHistogram
from simulator.metrics.online_join import JoinWindows, OnlineJoin
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.second_bucket import SecondBucket, export_seconds, merge_seconds
from simulator.metrics.second_spool import SecondSpool, bucket_from_line, bucket_to_line
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.metrics.series import build_series, second_histograms
from simulator.records import ArrivalRecord, SendRecord

REPORT_EVERY_S = 3  # Locust's WORKER_REPORT_INTERVAL


def _bucket(second: int, n: int, online: int | None = None) -> SecondBucket:
    bucket = SecondBucket()
    bucket.counts["acked"] = n
    bucket.online = online
    hist = bucket.hist(names.PATH_ACK)
    for k in range(n):
        hist.record_s((second * 7 + k) / 1000)
    bucket.seal(None)
    return bucket


def _as_dict(items: list[tuple[int, SecondBucket]]) -> dict[int, tuple[object, ...]]:
    return {s: (b.counts, b.online, {p: LatencyHistogram.decode(p, blob).count for p, blob in b.sealed.items()},
                b.stats) for s, b in items}


def test_line_round_trip() -> None:
    bucket = _bucket(3, 5, online=12)
    second, back = bucket_from_line(bucket_to_line(3, bucket))
    assert second == 3 and back.counts == bucket.counts and back.online == 12
    assert back.sealed == bucket.sealed and back.stats == bucket.stats


def test_spool_gives_every_second_once_in_order_with_late_additions_merged() -> None:
    spool = SecondSpool(hold=2)
    reference: dict[int, SecondBucket] = {}
    # Seconds arrive out of order, twice for some (two workers), and late for seconds already on disk.
    arrivals = [(0, 3), (2, 1), (1, 4), (3, 2), (2, 5), (6, 1), (0, 2), (7, 3), (9, 1), (1, 1), (12, 2), (8, 4)]
    for second, n in arrivals:
        spool.add(second, _bucket(second, n, online=n))
        merge_seconds(reference, export_seconds({second: _bucket(second, n, online=n)}), 0)
    assert spool.spilled > 0 and spool.late  # both paths taken: lines on disk, additions after them
    assert len(spool.recent) <= spool.hold + 1
    got = list(spool.items())
    assert [s for s, _ in got] == sorted(reference)
    assert _as_dict(got) == _as_dict(sorted(reference.items()))
    assert [s for s, _ in spool.items()] == sorted(reference)  # reading does not consume
    spool.close()


def _event(k: int, start: float, per_second: int) -> SendRecord:
    off = k / per_second
    rec = SendRecord(key=(f"d{k % 7}", "u", "Downloading", k, 0), intended=start + off,
                     sent=start + off + (k % 5) / 1000, t_ms=None)
    rec.acked = (rec.sent or 0.0) + (k % 11) / 1000
    return rec


def _play(seconds: int, per_second: int, worker_shift: float = 0.0) -> tuple[
        MetricsRecorder, MetricsRecorder, MetricsRecorder, list[dict[str, object]]]:
    """The same events into: one process as before (all seconds in memory), one process with a small spool,
    and a worker whose clock started `worker_shift` s later that ships its sealed seconds every 3 s."""
    clock = VirtualClock()
    start = clock.wall()
    memory = MetricsRecorder(clock, start=start)
    spooled = MetricsRecorder(clock, start=start)
    spooled.spool_seconds(SecondSpool(hold=4))
    worker = MetricsRecorder(clock, start=start + worker_shift)
    reports: list[dict[str, object]] = []
    most_held = 0
    for k in range(seconds * per_second):
        rec = _event(k, start, per_second)
        clock.set(max(clock.monotonic(), (rec.acked or start) - start))
        for target in (memory, spooled, worker):
            target.on_send(rec)
            target.on_ack(rec)
        if k % per_second == 0:
            spooled.device_online(1)
            memory.device_online(1)
        if (k + 1) % (REPORT_EVERY_S * per_second) == 0:
            reports.append(worker.take_sealed())
        assert spooled.spool is not None
        most_held = max(most_held, len(spooled.seconds) + len(spooled.spool.recent) + len(spooled.spool.late))
    late = _event(0, start, per_second)  # an ack for second 0 long after it went to disk
    late.acked = start + 0.9
    for target in (memory, spooled, worker):
        target.on_ack(late)
    reports.append(worker.take_sealed())
    assert spooled.spool is not None and spooled.spool.spilled >= seconds - 12
    # Bounded: the spool's window plus the recorder's open seconds, whatever the run's length.
    assert most_held <= spooled.spool.hold + spooled.open_seconds + 2, most_held
    return memory, spooled, worker, reports


def test_spooled_recorder_writes_the_same_series_and_hlog() -> None:
    memory, spooled, _, _ = _play(40, per_second=25)
    assert spooled.second_rows() == memory.second_rows()
    assert spooled.second_rows()[0]["acked"] == 26  # the late ack, merged into the second on disk
    assert spooled.second_histograms() == memory.second_histograms()
    for path in (names.PATH_ACK, names.PATH_SEND_LAG):
        assert spooled.histograms.get(path).hist.equals(memory.histograms.get(path).hist)


def _master(single: MetricsRecorder, final: dict[str, Any], reports: list[dict[str, object]],
            hold: int, absorb: bool) -> MetricsRecorder:
    inbox = SecondsInbox(float(final["start"]), SecondSpool(hold=hold))
    for report in reports:
        inbox.add(report)
    if hold < 40:
        assert inbox.spool.spilled > 0
    master = MetricsRecorder(single.clock, start=single.start)
    if absorb:
        master.absorb_seconds(inbox)
    else:  # the dict path (merge_books' join seconds)
        master.merge_seconds(inbox.start, export_seconds(dict(inbox.spool.items())))
    master.merge(final)
    return master


def test_master_reads_each_workers_spooled_inbox_at_the_end() -> None:
    for shift in (0.0, 2.0, -2.0):  # the worker's second 0 after, or before, the master's
        single, _, worker, reports = _play(40, per_second=25, worker_shift=shift)
        final = worker.final_export()
        on_disk = _master(single, final, reports, hold=4, absorb=True)
        in_memory = _master(single, final, reports, hold=1000, absorb=False)
        assert sum(row["acked"] for row in on_disk.second_rows()) == 40 * 25 + 1  # the late ack included
        assert on_disk.totals == in_memory.totals
        assert on_disk.second_rows() == in_memory.second_rows(), shift
        assert on_disk.second_histograms() == in_memory.second_histograms(), shift


def test_join_seconds_on_disk_give_the_same_series_and_hlog() -> None:
    """The local join's sealed seconds go to its spool; lost counts resolved at finish land in seconds already on
    disk (by intended second), kept apart and merged when the series is read."""
    start = 1_700_000_000.0
    windows = JoinWindows(ack_timeout_s=10.0, grace_s=5.0, hold_s=1.0, remember_s=20.0)
    clock = VirtualClock()
    recorder = MetricsRecorder(clock, start=start)
    memory, spooled = OnlineJoin(start, windows), OnlineJoin(start, windows)
    spooled.spool_seconds(SecondSpool(hold=3))
    for k in range(200):  # 5 events a second for 40 s; every 7th never arrives (lost at finish)
        at = start + k / 5
        rec = SendRecord(key=("d0", "op", "Downloading", k, 0), intended=at - 0.001, sent=at,
                         t_ms=round(at * 1000), acked=at + 0.002)
        recorder.on_send(rec)
        recorder.on_ack(rec)
        for join in (memory, spooled):
            join.add_send(rec)
            join.on_ack(rec)
            if k % 7:
                join.add_arrival(ArrivalRecord(key=rec.key, arrival=at + 0.01 * (k % 4 + 1), t_ms=rec.t_ms))
            join.tick(at)
    accounts = [accounting_of(join, start + 41, 5.0) for join in (memory, spooled)]
    assert spooled.spool is not None and spooled.spool.spilled > 25
    # What stays in memory: the last open seconds' histograms, and the lost counts resolved at finish (a few
    # bytes per second with a loss, none in a run that loses none), merged with the spool's seconds on reading.
    assert sum(1 for b in spooled.seconds.values() if b.sealed) <= windows.open_seconds + 1
    assert sum(1 for b in memory.seconds.values() if b.sealed) >= 40
    rows = [build_series(recorder, acc, duration_s=45.0) for acc in accounts]
    assert rows[1] == rows[0] and len(rows[0]) == 45
    assert sum(r["lost"] for r in rows[1]) == 29 and sum(r["delivered"] for r in rows[1]) == 171
    assert second_histograms(recorder, accounts[1]) == second_histograms(recorder, accounts[0])


def test_a_spooled_recorder_refuses_to_ship_its_seconds() -> None:
    """Shipping from a recorder that keeps its old seconds on disk would leave them out: it says so instead."""
    recorder = MetricsRecorder(VirtualClock())
    recorder.spool_seconds()
    for call in (recorder.take_sealed, recorder.export):
        with pytest.raises(RuntimeError, match="spools its seconds"):
            call()
