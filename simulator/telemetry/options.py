"""What live telemetry a run asked for (`--metrics-port`, `--otlp`): plain data, carried by RunSettings."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TelemetryOptions"]


@dataclass(frozen=True)
class TelemetryOptions:
    metrics_listen: str = ""  # `PORT` or `HOST:PORT` for /metrics; "" = off
    otlp_endpoint: str = ""  # OTLP/HTTP endpoint; "" = off
    otlp_interval_s: float = 10.0  # seconds between OTLP pushes (Prometheus pulls on its own schedule)

    @property
    def enabled(self) -> bool:
        return bool(self.metrics_listen or self.otlp_endpoint)
