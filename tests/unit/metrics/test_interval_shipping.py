"""Issue 14: a worker ships its sealed seconds and its closed operations with each periodic report, so its final
message does not grow with the run's length, and the master's merged books equal one process's."""

from __future__ import annotations

import msgpack  # type: ignore[import-untyped]

from simulator.clock import VirtualClock
from simulator.metrics import names
from simulator.metrics.campaign import OperationRecord, ResponderLog, campaign_report, fold_operations
from simulator.metrics.online_join import JoinWindows, OnlineJoin
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.records import ArrivalRecord, SendRecord

REPORT_EVERY_S = 3  # Locust's WORKER_REPORT_INTERVAL: when a worker's report_to_master fires


def _event(k: int, start: float, per_second: int) -> SendRecord:
    off = k / per_second
    rec = SendRecord(key=(f"d{k % 7}", "u", "Downloading", k, 0), intended=start + off,
                     sent=start + off + (k % 5) / 1000, t_ms=None)
    rec.acked = (rec.sent or 0.0) + (k % 11) / 1000
    return rec


Reports = list[dict[str, object]]


def _play(seconds: int, per_second: int, ship: bool) -> tuple[MetricsRecorder, MetricsRecorder, Reports]:
    """One process (`single`) and a worker fed the same events; the worker's reports every REPORT_EVERY_S
    (virtual) seconds when `ship`. Returns (single, worker, reports)."""
    clock = VirtualClock()
    start = clock.wall()
    single = MetricsRecorder(clock, start=start)
    worker = MetricsRecorder(clock, start=start)
    reports: Reports = []
    for k in range(seconds * per_second):
        rec = _event(k, start, per_second)
        clock.set(max(clock.monotonic(), (rec.acked or start) - start))
        for target in (single, worker):
            target.on_send(rec)
            target.on_ack(rec)
        if ship and (k + 1) % (REPORT_EVERY_S * per_second) == 0:
            reports.append(worker.take_sealed())
    return single, worker, reports


def _final_bytes(seconds: int, ship: bool) -> int:
    """The worker's final message as Locust sends it (msgpack; hooks._on_final measures the same)."""
    _, worker, _ = _play(seconds, per_second=20, ship=ship)
    final = worker.final_export() if ship else worker.export()
    return len(msgpack.packb(final, use_bin_type=True))


def test_final_message_does_not_grow_with_the_run() -> None:
    short, long = _final_bytes(30, ship=True), _final_bytes(300, ship=True)
    # 10x the run: the final holds the run totals (HDR encodings that fill a little) and the last few open
    # seconds, never the per-second series the reports took away.
    assert long <= short * 1.1, (short, long)
    # Without the reports it grows with the run (each sealed second costs ~0.6 KB here): the test can fail.
    assert _final_bytes(300, ship=False) > 5 * long


def test_streamed_seconds_merged_on_the_master_equal_one_process() -> None:
    single, worker, reports = _play(40, per_second=25, ship=True)
    late = _event(0, single.start, 25)  # an ack for second 0 arrives after that second was shipped
    late.acked = single.start + 0.9
    for target in (single, worker):
        target.on_ack(late)
    assert worker.seconds[0].counts["offered"] == 0 and worker.seconds[0].counts["acked"] == 1  # shipped, reopened
    reports.append(worker.take_sealed())  # the last report before test_stop
    inbox = SecondsInbox(worker.start)  # the master's, for this worker: merged as its reports come
    for report in reports:
        inbox.add(report)
    final = worker.final_export()
    assert worker.take_sealed()["seconds"] == {}  # Locust's report after test_stop: nothing shipped twice
    master = MetricsRecorder(single.clock, start=single.start)
    master.absorb_seconds(inbox)
    master.merge(final)
    assert master.totals == single.totals
    for path in (names.PATH_ACK, names.PATH_ACK_CORRECTED, names.PATH_SEND_LAG):
        assert master.histograms.get(path).hist.equals(single.histograms.get(path).hist)
    assert master.second_rows() == single.second_rows()
    assert master.second_rows()[0]["acked"] == 26


def test_closed_operations_leave_the_device_and_fold_back_whole() -> None:
    log = ResponderLog("dev-a")
    log.request("Update", "u1", 100.0)
    log.published("u1", "Acknowledged", "", 100.001)
    log.acked("u1", "Acknowledged", 100.010)
    log.published("u1", "Success", "", 102.9)
    log.acked("u1", "Success", 103.0)
    log.request("Update", "u2", 101.0)  # still open at the report
    whole = ResponderLog("dev-a")
    for op, uuid, at in (("Update", "u1", 100.0), ("Update", "u2", 101.0)):
        whole.request(op, uuid, at)
    whole.acked("u1", "Acknowledged", 100.010)
    whole.published("u1", "Success", "", 102.9)
    whole.acked("u1", "Success", 103.0)
    shipped = log.take_closed()
    assert [r.uuid for r in shipped] == ["u1"] and list(log.traces) == ["u2"]  # the device keeps the open one
    log.request("Update", "u1", 104.0)  # the backend re-sends u1 after its final: a new piece on the device
    whole.request("Update", "u1", 104.0)
    folded: dict[tuple[str, str], OperationRecord] = {}
    fold_operations(folded, shipped)
    fold_operations(folded, log.records())
    assert sorted(folded.values(), key=lambda r: r.uuid) == sorted(whole.records(), key=lambda r: r.uuid)
    report = campaign_report(list(folded.values()), end=105.0)
    assert (report.operations, report.answered, report.retries_seen) == (2, 1, 1)


def test_join_seconds_shipped_during_the_run_equal_the_unshipped_join() -> None:
    start = 1_700_000_000.0
    windows = JoinWindows(ack_timeout_s=10.0, grace_s=5.0, hold_s=1.0, remember_s=20.0)
    whole, shipping = OnlineJoin(start, windows), OnlineJoin(start, windows)
    inbox = SecondsInbox(start)
    for k in range(200):  # 5 events a second for 40 s; every 7th never arrives (lost at finish)
        at = start + k / 5
        rec = SendRecord(key=("d0", "op", "Downloading", k, 0), intended=at - 0.001, sent=at,
                         t_ms=round(at * 1000), acked=at + 0.002)
        for join in (whole, shipping):
            join.add_send(rec)
            join.on_ack(rec)
            if k % 7:
                join.add_arrival(ArrivalRecord(key=rec.key, arrival=at + 0.01 * (k % 4 + 1), t_ms=rec.t_ms))
            join.tick(at)
        if k % 15 == 14:  # a report every 3 s
            inbox.add(shipping.take_sealed())
    for join in (whole, shipping):
        join.finish(start + 41, 5.0)
    assert shipping.lost == whole.lost == 29 and shipping.delivered == whole.delivered == 171
    # The worker's join kept histograms for its last open seconds only; the older seconds it still holds are
    # lost counts resolved at finish (by intended second: a few bytes each, and none in a run that loses none).
    open_after_last_report = windows.open_seconds + REPORT_EVERY_S
    assert inbox.newest > 30 and sum(1 for b in shipping.seconds.values() if b.sealed) <= open_after_last_report
    inbox.move_into(shipping.seconds, start)  # what merge_books does with the master's inbox
    assert sorted(shipping.seconds) == sorted(whole.seconds)
    for second, bucket in whole.seconds.items():
        moved = shipping.seconds[second]
        assert {k: v for k, v in moved.counts.items() if v} == {k: v for k, v in bucket.counts.items() if v}
        assert moved.stats == bucket.stats, second
