"""MetricsRecorder: raw vs coordinated-omission-corrected latency on a fake clock, buckets, merge, cost."""

from __future__ import annotations

from simulator.clock import VirtualClock
from simulator.metrics import names
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import ArrivalRecord, OnboardingTimes, SendRecord


def _stalled_run() -> MetricsRecorder:
    """100 events intended every 10 ms; the generator stalls for 100 ms at event 50, so events 50..59 all
    leave at 0.600 s (the wake-up); every ack takes exactly 1 ms after its actual send."""
    clock = VirtualClock()
    start = clock.wall()
    rec = MetricsRecorder(clock, start=start)
    for k in range(100):
        intended_off = k * 0.010
        sent_off = 0.600 if 50 <= k < 60 else intended_off
        clock.set(max(clock.monotonic(), sent_off))
        r = SendRecord(
            key=("d", "u", "Downloading", k, 0),
            intended=start + intended_off,
            sent=start + sent_off,
            t_ms=None,
        )
        rec.on_send(r)
        r.acked = r.sent + 0.001 if r.sent is not None else None
        rec.on_ack(r)
    return rec


def test_corrected_latency_exposes_the_stall_raw_hides_it() -> None:
    rec = _stalled_run()
    raw = rec.histograms.get(names.PATH_ACK).summary_ms()
    corrected = rec.histograms.get(names.PATH_ACK_CORRECTED).summary_ms()
    lag = rec.histograms.get(names.PATH_SEND_LAG).summary_ms()
    # Raw: every ack 1 ms after its send (1,000 us is recorded exactly below 2,048 us).
    assert (raw["p50"], raw["p99"], raw["max"], raw["count"]) == (1.0, 1.0, 1.0, 100)
    # Corrected: events 50..59 waited 101, 91, ..., 11 ms from their intended time; 90 others 1 ms.
    # p99 = 99th of 100 sorted = 91 ms; HDR reports the bucket's highest equivalent value (64 us buckets
    # between 65,536 and 131,072 us): 91,000 -> 91,007 us; max 101,000 -> 101,055 us.
    assert corrected["p50"] == 1.0
    assert corrected["p90"] == 1.0
    assert corrected["p99"] == 91.007
    assert corrected["max"] == 101.055
    assert corrected["p99"] > 90 * raw["p99"]
    # The generator's own lateness shows on the send_lag path: 100, 90, ..., 10 ms.
    assert lag["max"] == 100.031  # 100,000 us in a 64 us bucket -> 99,968..100,031
    assert lag["p90"] == 0.0


def test_per_second_buckets_counts_and_percentiles() -> None:
    rec = _stalled_run()
    rows = rec.second_rows()
    assert len(rows) == 1  # everything happened within second 0 (0.0 .. 0.99 s)
    row = rows[0]
    assert (row["offered"], row["sent"], row["acked"]) == (100, 100, 100)
    assert row["ack_p99_ms"] == 1.0 and row["ack_corrected_p99_ms"] == 91.007


def test_buckets_seal_and_reopen_for_late_values() -> None:
    clock = VirtualClock()
    start = clock.wall()
    rec = MetricsRecorder(clock, start=start, open_seconds=2)
    early = SendRecord(
        key=("d", "u", "Acknowledged", 0, 0), intended=start + 0.5, sent=start + 0.5, t_ms=None
    )
    rec.on_send(early)
    for s in range(1, 10):
        r = SendRecord(key=("d", "u", "Downloading", s, 0), intended=start + s, sent=start + s, t_ms=None)
        r.acked = start + s + 0.002
        rec.on_send(r)
        rec.on_ack(r)
    assert rec.seconds[0].hists == {} and names.PATH_SEND_LAG in rec.seconds[0].sealed  # sealed
    early.acked = start + 0.9  # an ack for second 0 arrives very late: reopen, not lose it
    rec.on_ack(early)
    rows = rec.second_rows()
    assert rows[0]["acked"] == 1 and rows[0]["ack_p50_ms"] == 400.127  # 400,000 us, 256 us bucket
    assert [r["acked"] for r in rows] == [1] + [1] * 9


def test_errors_online_onboarding_and_snapshot() -> None:
    clock = VirtualClock()
    start = clock.wall()
    rec = MetricsRecorder(clock, start=start)
    rec.device_online(+3)
    rec.on_onboarding(OnboardingTimes(registration=None, certificate=0.010, connect=0.020, handshake=0.003))
    failed = SendRecord(
        key=("d", "u", "Acknowledged", 0, 0), intended=start, sent=None, t_ms=None, error="disconnected"
    )
    rec.on_publish_error(failed)
    ok = SendRecord(key=("d", "u", "Downloading", 0, 0), intended=start + 0.1, sent=start + 0.1, t_ms=170)
    rec.on_send(ok)
    ok.error = "disconnected"  # the session dropped before PUBCOMP
    rec.on_ack(ok)
    rec.on_arrival(ArrivalRecord(key=ok.key, arrival=start + 0.2, t_ms=int((start + 0.1) * 1000)))
    clock.set(1.5)
    rec.device_online(-1)
    snap = rec.snapshot()
    assert snap["devices_online"] == 2
    assert snap["offered_eps"] == 2 and snap["acked_eps"] == 0
    assert snap["errors"] == 2
    assert rec.error_reasons == {"disconnected": 2}
    assert rec.histograms.get(names.onboarding_path("connect")).count == 1
    assert names.onboarding_path("registration") not in rec.histograms.paths  # skipped phase: not a zero
    whole = rec.histograms.get(names.PATH_ONBOARDING).summary_ms()  # 10 + 20 + 3 ms, the skipped phase left out
    assert whole["count"] == 1 and 33.0 <= whole["max"] < 33.1
    assert rec.totals["delivered"] == 1
    assert len(rec.send_log) == 2
    rows = rec.second_rows()
    assert [r["devices_online"] for r in rows] == [3, 2]


def test_export_merge_equals_single_recorder() -> None:
    clock = VirtualClock()
    start = clock.wall()
    single = MetricsRecorder(clock, start=start)
    workers = [MetricsRecorder(clock, start=start) for _ in range(2)]
    for k in range(400):
        off = k * 0.013
        r = SendRecord(
            key=(f"d{k % 7}", "u", "Downloading", k, 0),
            intended=start + off,
            sent=start + off + (k % 5) / 1000,
            t_ms=None,
        )
        r.acked = (r.sent or 0) + (k % 11) / 1000
        for target in (single, workers[k % 2]):
            target.on_send(r)
            target.on_ack(r)
    master = MetricsRecorder(clock, start=start)
    for w in workers:
        master.merge(w.export(include_send_log=True))
    assert master.totals == single.totals
    for path in (names.PATH_ACK, names.PATH_ACK_CORRECTED, names.PATH_SEND_LAG):
        assert master.histograms.get(path).hist.equals(single.histograms.get(path).hist)
    assert master.second_rows() == single.second_rows()
    assert len(master.send_log) == 400
