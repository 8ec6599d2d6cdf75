"""`--otlp ENDPOINT`: the same metrics as /metrics, pushed over OTLP/HTTP (protobuf) every few seconds.

Needs the optional extra: `pip install 'edgehog-fleetsim[otlp]'` (opentelemetry-sdk and
opentelemetry-exporter-otlp-proto-http). The HDR histograms are already aggregated, so no SDK instrument
re-records anything: each push builds the SDK's MetricsData from one TelemetrySnapshot (families.py) with
cumulative temporality and hands it to the SDK's OTLPMetricExporter. Run labels become resource attributes
(fleetsim.scenario, fleetsim.run_id, ...) and data point attributes (the same names as the Prometheus labels).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from simulator.errors import UsageError
from simulator.telemetry.buckets import ClassicHistogram
from simulator.telemetry.families import families
from simulator.telemetry.hub import TelemetrySnapshot

__all__ = ["DEFAULT_INTERVAL_S", "OtlpExporter", "metrics_data", "otlp_metrics_url"]

log = logging.getLogger("fleetsim.telemetry")

DEFAULT_INTERVAL_S = 10.0  # OpenTelemetry's own default export interval is 60 s; staging dashboards want less
SCOPE = "fleetsim"


def otlp_metrics_url(endpoint: str) -> str:
    """An OTLP/HTTP base (`http://host:4318`) gets the standard `/v1/metrics` path; a full path is kept."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--otlp: expected an http(s) URL such as http://127.0.0.1:4318, got {endpoint!r}")
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/metrics"
    return endpoint


def metrics_data(snap: TelemetrySnapshot, start_ns: int) -> Any:
    """The SDK's MetricsData for one snapshot (cumulative since `start_ns`)."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    now_ns = int(snap.taken_at * 1e9)
    run = snap.labels.as_dict()
    cumulative = AggregationTemporality.CUMULATIVE
    metrics: list[Any] = []
    for fam in families(snap):
        if not fam.samples:
            continue
        data: Any
        if fam.kind == "histogram":
            points = []
            for sample in fam.samples:
                h = sample.value
                assert isinstance(h, ClassicHistogram)
                points.append(HistogramDataPoint(
                    attributes={**run, **dict(sample.labels)}, start_time_unix_nano=start_ns, time_unix_nano=now_ns,
                    count=h.count, sum=h.sum_s, bucket_counts=list(h.per_bucket()), explicit_bounds=list(h.bounds_s),
                    min=h.min_s, max=h.max_s))
            data = Histogram(data_points=points, aggregation_temporality=cumulative)
            unit = "s"
        else:
            numbers = [NumberDataPoint(attributes={**run, **dict(s.labels)}, start_time_unix_nano=start_ns,
                                       time_unix_nano=now_ns, value=int(s.value) if isinstance(s.value, int)
                                       else float(s.value))  # type: ignore[arg-type]
                       for s in fam.samples]
            if fam.kind == "counter":
                data = Sum(data_points=numbers, aggregation_temporality=cumulative, is_monotonic=True)
            else:
                data = Gauge(data_points=numbers)
            unit = "1"
        metrics.append(Metric(name=fam.name, description=fam.help, unit=unit, data=data))
    resource = Resource.create({"service.name": "fleetsim", **{f"fleetsim.{k}": v for k, v in run.items()}})
    scope = InstrumentationScope(SCOPE)
    return MetricsData(resource_metrics=[ResourceMetrics(
        resource=resource, scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url="")],
        schema_url="")])


@dataclass
class OtlpExporter:
    """Pushes `source()` every `interval_s` and once more at stop(); a failed push is logged, never fatal."""

    source: Callable[[], TelemetrySnapshot]
    endpoint: str
    interval_s: float = DEFAULT_INTERVAL_S
    pushes: int = 0
    failures: int = 0
    _start_ns: int = 0
    _exporter: Any = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> str:
        url = otlp_metrics_url(self.endpoint)
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        except ImportError:
            raise UsageError("--otlp needs the optional extra: pip install 'edgehog-fleetsim[otlp]'") from None
        import time

        self._start_ns = time.time_ns()
        self._exporter = OTLPMetricExporter(endpoint=url, timeout=5.0)
        self._thread = threading.Thread(target=self._loop, name="fleetsim-otlp", daemon=True)
        self._thread.start()
        return url

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.push()

    def push(self) -> bool:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        try:
            result = self._exporter.export(metrics_data(self.source(), self._start_ns))
            ok = bool(result == MetricExportResult.SUCCESS)
        except Exception as exc:  # a collector outage must not stop a load test; the count says so
            log.warning("OTLP push failed: %s", exc)
            ok = False
        self.pushes += 1
        if not ok:
            self.failures += 1
            if self.failures == 1:
                log.warning("OTLP push to %s failed (further failures are counted, not logged)", self.endpoint)
        return ok

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 10)
        self._thread = None
        self.push()  # the final numbers: the last interval is not lost
        self._exporter.shutdown()
