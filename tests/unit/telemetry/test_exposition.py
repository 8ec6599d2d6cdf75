"""The live view: a recorder's numbers through ProcessReport (and the worker wire format) into prometheus_client's
exposition, parsed back with prometheus_client's own parser. Virtual clock, no network."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from simulator.clock import VirtualClock
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import ArrivalRecord, SendRecord
from simulator.telemetry.families import METRIC_NAMES
from simulator.telemetry.hub import TelemetryHub, run_labels
from simulator.telemetry.prometheus import FleetCollector
from simulator.telemetry.report import ProcessProbe, ProcessReport, merge_reports


def _recorder(clock: VirtualClock, acks_ms: list[float], status: str = "Downloading") -> MetricsRecorder:
    rec = MetricsRecorder(clock)
    start = rec.start
    rec.device_online(+1)
    for i, ms in enumerate(acks_ms):
        sent = start + i * 0.01
        r = SendRecord(key=("dev", "u1", status, i, 0), intended=sent, sent=sent, t_ms=None)
        rec.on_send(r)
        r.acked = sent + ms / 1000
        rec.on_ack(r)
    failed = SendRecord(key=("dev", "u1", "Failure", 0, 0), intended=start, sent=start, t_ms=None,
                        error="never_acked", code="NetworkError")
    rec.on_send(failed)
    rec.on_ack(failed)
    return rec


def _scrape(hub: TelemetryHub) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(hub.snapshot))
    text = generate_latest(registry).decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items()
                                  if k not in ("scenario", "run_id", "transport", "target")))
            out.setdefault(s.name, {})[labels] = s.value
    return out


LABELS = run_labels("quick", "lean", "/secret/dir/staging.target.yaml", started=1_800_000_000.0)


def test_labels_never_carry_the_target_files_path() -> None:
    assert LABELS.target == "staging.target.yaml"
    assert LABELS.run_id == "20270115T080000Z-quick"


def test_a_local_recorder_is_scraped_with_counts_and_buckets() -> None:
    clock = VirtualClock()
    rec = _recorder(clock, [0.4, 0.8, 3.0, 30.0])
    hub = TelemetryHub(labels=LABELS, probe=ProcessProbe(recorder=lambda: rec))
    got = _scrape(hub)
    assert got["fleetsim_events_sent_total"][()] == 5
    assert got["fleetsim_events_acked_total"][()] == 4
    assert got["fleetsim_ack_errors_total"][()] == 1
    assert got["fleetsim_event_errors_total"][(("reason", "never_acked"),)] == 1
    assert got["fleetsim_ota_events_total"][(("code", ""), ("status", "Downloading"))] == 4
    assert got["fleetsim_ota_events_total"][(("code", "NetworkError"), ("status", "Failure"))] == 1
    assert got["fleetsim_devices_online"][()] == 1
    buckets = got["fleetsim_latency_seconds_bucket"]
    assert buckets[(("le", "0.0005"), ("path", "ack"))] == 1
    assert buckets[(("le", "0.001"), ("path", "ack"))] == 2
    assert buckets[(("le", "0.005"), ("path", "ack"))] == 3
    assert buckets[(("le", "+Inf"), ("path", "ack"))] == 4
    assert got["fleetsim_latency_seconds_count"][(("path", "ack"),)] == 4
    assert abs(got["fleetsim_latency_seconds_sum"][(("path", "ack"),)] - 0.0342) < 1e-4
    assert "fleetsim_events_delivered_total" not in got  # no collector asked: no made-up zero


def test_every_declared_metric_is_exposed_once_arrivals_are_known() -> None:
    clock = VirtualClock()
    rec = _recorder(clock, [1.0])
    hub = TelemetryHub(labels=LABELS, probe=ProcessProbe(recorder=lambda: rec))
    hub.on_arrivals([ArrivalRecord(key=("dev", "u1", "Downloading", 0, 0), arrival=rec.start + 0.5,
                                   t_ms=int(rec.start * 1000))])
    got = _scrape(hub)
    assert got["fleetsim_events_delivered_total"][()] == 1
    assert got["fleetsim_latency_seconds_count"][(("path", "e2e_device_t"),)] == 1
    exposed = {name.removesuffix("_total") for name in got} | {
        name.rsplit("_", 1)[0] for name in got if name.endswith(("_bucket", "_count", "_sum"))}
    assert set(METRIC_NAMES) <= exposed | {"fleetsim_onboarding_seconds"}  # no onboarding in this recorder


def test_workers_reports_survive_the_wire_and_add_up() -> None:
    clock = VirtualClock()
    one, two = _recorder(clock, [1.0, 2.0]), _recorder(clock, [3.0])
    wire = [ProcessProbe(recorder=lambda r=r: r).report().to_wire() for r in (one, two)]  # type: ignore[misc]
    hub = TelemetryHub(labels=LABELS)
    for i, data in enumerate(wire):
        hub.worker_report(f"w{i}", ProcessReport.from_wire(data))
    got = _scrape(hub)
    assert got["fleetsim_workers_reporting"][()] == 2
    assert got["fleetsim_events_acked_total"][()] == 3
    assert got["fleetsim_latency_seconds_count"][(("path", "ack"),)] == 3
    assert got["fleetsim_devices_online"][()] == 2
    merged = merge_reports([ProcessReport.from_wire(d) for d in wire])
    assert merged.histograms["ack"].count == 3


def test_the_worker_report_is_bounded_whatever_the_event_count() -> None:
    clock = VirtualClock()
    small = ProcessProbe(recorder=lambda: _recorder(clock, [1.0] * 10)).report().to_wire()
    rng = [0.1 + (i % 997) * 0.37 for i in range(20_000)]
    big_rec = _recorder(clock, rng)
    big = ProcessProbe(recorder=lambda: big_rec).report().to_wire()
    size = len(str(big))
    assert size < 16_000, size  # a few KB: encoded histograms, never per-event rows
    assert len(str(small)) < size


def test_reading_the_running_totals_seals_nothing() -> None:
    """A scrape must not change the recorder: the open seconds keep their live histograms (the progress line's
    last-second p50/p99 come from them) and the copy's counts are the run's so far."""
    clock = VirtualClock()
    rec = _recorder(clock, [0.5] * 50 + [9.0] * 50)
    open_before = {s: set(b.hists) for s, b in rec.seconds.items()}
    totals = rec.running_histograms()
    assert totals.get("ack").count == 100 and totals.get("send_lag").count == 101  # + the unacked send
    assert {s: set(b.hists) for s, b in rec.seconds.items()} == open_before
    assert any(open_before.values())
    totals.get("ack").record_us(1)  # a copy: the recorder's own totals do not move
    assert rec.histograms.get("ack").count == 100


def test_finals_replace_live_reports_only_when_every_worker_sent_one() -> None:
    clock = VirtualClock()
    live = [ProcessProbe(recorder=lambda r=r: r).report()  # type: ignore[misc]
            for r in (_recorder(clock, [1.0]), _recorder(clock, [1.0]))]
    final = ProcessProbe(recorder=lambda: _recorder(clock, [1.0, 2.0])).report()
    hub = TelemetryHub(labels=LABELS)
    hub.worker_report("a", live[0])
    hub.worker_report("b", live[1])
    assert not hub.use_finals([final])  # one worker's final is missing: keep both live reports
    assert hub.snapshot().process.counters["acked"] == 2
    assert hub.use_finals([final, final])
    assert hub.snapshot().process.counters["acked"] == 4
