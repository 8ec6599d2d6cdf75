"""`--metrics-port`: a Prometheus/OpenMetrics endpoint built on prometheus_client (no hand-written exposition).

A custom Collector renders a fresh TelemetrySnapshot per scrape (content negotiation, OpenMetrics or the 0.0.4
text format, is prometheus_client's). Histograms are classic buckets converted from the HDR histograms
(buckets.py): prometheus_client writes native histograms only in its experimental OpenMetrics 2.0 text, which
Prometheus does not scrape, so none are offered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from simulator.errors import UsageError
from simulator.telemetry.buckets import ClassicHistogram
from simulator.telemetry.families import families
from simulator.telemetry.hub import TelemetrySnapshot

__all__ = ["FleetCollector", "PrometheusExporter", "parse_listen"]


def _le(bound: float) -> str:
    return format(bound, "g")


class FleetCollector(Collector):
    """prometheus_client Collector over a snapshot source (TelemetryHub.snapshot)."""

    def __init__(self, source: Callable[[], TelemetrySnapshot]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        snap = self.source()
        run = snap.labels.as_dict()
        run_keys = list(run)
        for fam in families(snap):
            extra_keys = [k for k, _ in fam.samples[0].labels] if fam.samples else []
            keys = run_keys + extra_keys
            metric: Any
            if fam.kind == "counter":
                metric = CounterMetricFamily(fam.name, fam.help, labels=keys)
            elif fam.kind == "gauge":
                metric = GaugeMetricFamily(fam.name, fam.help, labels=keys)
            else:
                metric = HistogramMetricFamily(fam.name, fam.help, labels=keys, unit="")
            for sample in fam.samples:
                values = list(run.values()) + [v for _, v in sample.labels]
                if isinstance(sample.value, ClassicHistogram):
                    h = sample.value
                    buckets = [(_le(b), float(n)) for b, n in zip(h.bounds_s, h.cumulative, strict=False)]
                    buckets.append(("+Inf", float(h.count)))
                    metric.add_metric(values, buckets, h.sum_s)
                else:
                    metric.add_metric(values, float(sample.value))
            yield metric


def parse_listen(value: str) -> tuple[str, int]:
    """`PORT` (loopback) or `HOST:PORT` -> (host, port); a bad value is a UsageError (one line, exit 2)."""
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"--metrics-port: expected PORT or HOST:PORT, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port: port {port} out of range 0..65535")
    return host, port


@dataclass
class PrometheusExporter:
    """Serves /metrics on host:port in a daemon thread (a greenlet under Locust's gevent patching)."""

    source: Callable[[], TelemetrySnapshot]
    host: str = "127.0.0.1"
    port: int = 0
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        from prometheus_client import start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(self.source))
        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            raise UsageError(f"--metrics-port: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
                             ) from None
        self.port = int(self._server.server_port)
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
