"""HDR histogram -> classic cumulative buckets (Prometheus `le`, OTLP explicit bounds). Pure and vectorised.

An HDR index covers the values [lowest equivalent, highest equivalent] (0.1% wide at 3 significant digits). A
count goes into the first bucket whose bound is >= the index's lowest equivalent value, so a bucket can hold
values up to 0.1% above its bound; no value is ever put below its true bucket (latency is never flattered).
The sum is count x median equivalent value per index (hdrh's mean, times the count), in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = ["LATENCY_BOUNDS_S", "ClassicHistogram", "to_classic"]

# Bucket bounds in seconds: 0.5 ms .. 10 min. Loopback acks are ~0.5-5 ms, a loaded staging backend's e2e is
# 10 ms - 10 s, onboarding (pairing + TLS) 10 ms - minutes when the Pairing API queues; beyond 10 min is +Inf.
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0)


@dataclass(frozen=True)
class ClassicHistogram:
    """Cumulative counts per upper bound (seconds; the last bound is +Inf and equals `count`)."""

    bounds_s: tuple[float, ...]  # finite bounds, ascending
    cumulative: tuple[int, ...]  # len(bounds_s) + 1: counts <= each bound, then the total (+Inf)
    count: int
    sum_s: float
    min_s: float = 0.0  # smallest and largest value recorded (HDR-equivalent), 0 when empty
    max_s: float = 0.0

    def per_bucket(self) -> tuple[int, ...]:
        """Non-cumulative counts (OTLP's bucket_counts), len(bounds_s) + 1."""
        out = []
        previous = 0
        for value in self.cumulative:
            out.append(value - previous)
            previous = value
        return tuple(out)


# Geometry (lowest, highest, digits) -> (lowest equivalent value per index, median equivalent value per index).
_GEOMETRY: dict[tuple[int, int, int], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}


def _geometry(hist: HdrHistogram) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    key = (int(hist.lowest_trackable_value), int(hist.highest_trackable_value), int(hist.significant_figures))
    found = _GEOMETRY.get(key)
    if found is None:  # once per geometry: ~24k indexes walked in Python (~30 ms)
        values = [hist.get_value_from_index(i) for i in range(hist.counts_len)]
        lows = np.array([hist.get_lowest_equivalent_value(v) for v in values], dtype=np.float64)
        medians = np.array([hist._hdr_median_equiv_value(v) for v in values], dtype=np.float64)
        found = _GEOMETRY[key] = (lows, medians)
    return found


def to_classic(hist: HdrHistogram, bounds_s: Sequence[float] = LATENCY_BOUNDS_S, unit_s: float = 1e-6
               ) -> ClassicHistogram:
    """Cumulative buckets of an HDR histogram whose values are in `unit_s` seconds (fleetsim: microseconds)."""
    bounds = tuple(float(b) for b in bounds_s)
    if list(bounds) != sorted(bounds):
        raise ValueError(f"bucket bounds must ascend: {bounds}")
    total = int(hist.get_total_count())
    if total == 0:
        return ClassicHistogram(bounds, (0,) * (len(bounds) + 1), 0, 0.0)
    lows, medians = _geometry(hist)
    counts = np.ctypeslib.as_array(hist.counts)[: len(lows)].astype(np.int64)
    cumulative = np.cumsum(counts)
    # Index i goes to the first bound >= its lowest value: indexes with lows <= bound are counted under it.
    limits = np.array(bounds, dtype=np.float64) / unit_s
    ends = np.searchsorted(lows, limits, side="right")
    under = [int(cumulative[end - 1]) if end > 0 else 0 for end in ends]
    total_sum = float(counts.astype(np.float64) @ medians) * unit_s
    return ClassicHistogram(bounds, (*under, total), total, total_sum, min_s=float(hist.get_min_value()) * unit_s,
                            max_s=float(hist.get_max_value()) * unit_s)
