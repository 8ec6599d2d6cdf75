"""The OTLP exporter against a real OTLP/HTTP receiver on loopback (protobuf decoded with opentelemetry-proto)."""

from __future__ import annotations

from simulator.clock import VirtualClock
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import SendRecord
from simulator.telemetry.hub import TelemetryHub, run_labels
from simulator.telemetry.otlp import OtlpExporter
from simulator.telemetry.report import ProcessProbe
from tests.integration.telemetry.otlp_receiver import OtlpReceiver, attributes, metrics_of


def _hub() -> TelemetryHub:
    rec = MetricsRecorder(VirtualClock())
    for i, ms in enumerate((0.4, 0.8, 3.0)):
        r = SendRecord(key=("dev", "u", "Downloading", i, 0), intended=rec.start, sent=rec.start, t_ms=None)
        rec.on_send(r)
        r.acked = rec.start + ms / 1000
        rec.on_ack(r)
    rec.device_online(+1)
    return TelemetryHub(labels=run_labels("quick", "lean", "embedded", started=1_800_000_000.0),
                        probe=ProcessProbe(recorder=lambda: rec))


def test_push_reaches_the_receiver_as_otlp_protobuf() -> None:
    with OtlpReceiver() as receiver:
        exporter = OtlpExporter(_hub().snapshot, receiver.url, interval_s=60.0)
        assert exporter.start() == receiver.url + "/v1/metrics"
        exporter.stop()  # stop pushes the final numbers once
        assert receiver.got.wait(10.0)
    assert exporter.failures == 0 and receiver.paths == ["/v1/metrics"]
    request = receiver.requests[-1]
    resource = {kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes}
    assert resource["fleetsim.scenario"] == "quick" and resource["service.name"] == "fleetsim"
    metrics = metrics_of(request)
    acked = metrics["fleetsim_events_acked"].sum
    assert acked.is_monotonic and acked.data_points[0].as_int == 3
    assert attributes(acked.data_points[0])["run_id"] == "20270115T080000Z-quick"
    assert metrics["fleetsim_devices_online"].gauge.data_points[0].as_int == 1
    hist = metrics["fleetsim_latency_seconds"].histogram
    ack = next(p for p in hist.data_points if attributes(p)["path"] == "ack")
    assert ack.count == 3 and sum(ack.bucket_counts) == 3
    assert list(ack.explicit_bounds)[:3] == [0.0005, 0.001, 0.002]
    assert list(ack.bucket_counts)[:4] == [1, 1, 0, 1]  # 0.4 ms, 0.8 ms, 3 ms
    assert abs(ack.max - 0.003) < 1e-5 and abs(ack.sum - 0.0042) < 1e-5


def test_an_unreachable_receiver_is_counted_not_fatal() -> None:
    with OtlpReceiver() as receiver:
        url = receiver.url
    exporter = OtlpExporter(_hub().snapshot, url, interval_s=60.0)
    exporter.start()
    assert exporter.push() is False
    exporter.stop()
    assert exporter.failures == 2 and exporter.pushes == 2
