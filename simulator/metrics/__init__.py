"""Measurement: HDR latency per labelled path, per-event accounting, OTA funnel, generator health,
time series.

Pure code over simulator.records with an injected clock (simulator.clock); the runner calls it, no I/O here
except psutil's CPU reading in health.GeneratorHealth.sample_cpu.
"""

from __future__ import annotations

from simulator.metrics.accounting import Accounting, account
from simulator.metrics.funnel import Funnel, build_funnel, funnel_from_arrivals, funnel_from_sends
from simulator.metrics.health import (
    ClockOffset,
    GeneratorHealth,
    HealthThresholds,
    Verdict,
    clock_offset_estimate,
    verdict,
)
from simulator.metrics.histograms import HistogramSet, LatencyHistogram
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.series import build_series, second_histograms

__all__ = [
    "Accounting",
    "ClockOffset",
    "Funnel",
    "GeneratorHealth",
    "HealthThresholds",
    "HistogramSet",
    "LatencyHistogram",
    "MetricsRecorder",
    "Verdict",
    "account",
    "build_funnel",
    "build_series",
    "clock_offset_estimate",
    "funnel_from_arrivals",
    "funnel_from_sends",
    "second_histograms",
    "verdict",
]
