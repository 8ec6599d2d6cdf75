"""HDR latency histograms, one per labelled path (docs/design.md principles 5 and 6), over `hdrhistogram` (hdrh).

Values are microseconds from 1 us to 1 h at 3 significant digits (0.1% resolution: 1 us below 1 ms, 1 ms
below 1 s; the classic HdrHistogram configuration). Each path is recorded raw and corrected for coordinated
omission: raw = end - sent, corrected = end - intended (latency from when the plan wanted the event to leave,
so a generator that falls behind cannot hide the delay; Gil Tene, "How NOT to measure latency").

A negative latency is never recorded silently: it is clamped to 0 and counted with its reason (usually a clock
offset between generator and observer hosts; see health.clock_offset_estimate). Values above 1 h are clamped
to 1 h and counted as `overflow`. Histograms merge across workers with `add` and travel as base64 strings.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "PERCENTILES",
    "SIGNIFICANT_DIGITS",
    "HistogramSet",
    "LatencyHistogram",
    "mean_us",
    "new_hdr",
    "percentiles_us",
    "release_hdr",
]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # 1 h in microseconds
SIGNIFICANT_DIGITS = 3
_REFERENCE = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
_COUNTS_LEN, _WORD_SIZE = _REFERENCE.counts_len, _REFERENCE.word_size
# Percentiles reported everywhere (summary.json keys p50, p90, p99, p999).
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


# Released histograms (`release_hdr`), zeroed, for `new_hdr` to hand out again. Why: every second of a run
# opens a few per-second histograms and frees them when the second seals (recorder and join), each with a
# 23,552-counter array of 8-byte words (184 KiB); glibc raises its mmap threshold to the size of the first
# mmapped chunk freed, so later ones come from the heap, and freeing and re-allocating them between a run's
# small long-lived objects fragments it. Measured (bench/histogram_churn.py: a recorder fed 200 events/s for 1,500
# simulated seconds, shipping sealed seconds every 3 s, 60 s of keys kept alongside; n=3 each, identical):
# RSS 75.1 -> 104.2 -> 91.3 MB at seconds 100/750/1499 without reuse, 38.8 MB flat with it. A few dozen
# cover the open seconds of a recorder and a join; more are freed as before.
_FREE: list[HdrHistogram] = []
FREE_MAX = 64


def new_hdr() -> HdrHistogram:
    """An empty histogram in the one configuration every path and worker uses (so `add` is an array add)."""
    if _FREE:
        return _FREE.pop()
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def release_hdr(hist: HdrHistogram) -> bool:
    """`hist` is no longer used by its owner: zero it for a later `new_hdr` (the caller keeps no reference).
    False when the pool is full (or `hist` has another shape): the caller lets it go."""
    if len(_FREE) >= FREE_MAX or hist.counts_len != _COUNTS_LEN or hist.word_size != _WORD_SIZE:
        return False
    ctypes.memset(hist.counts, 0, ctypes.sizeof(hist.counts))  # hdrh's reset() zeroes them one by one in Python
    hist.total_count = 0
    hist.min_value = sys.maxsize
    hist.max_value = 0
    hist.start_time_stamp_msec = sys.maxsize
    hist.end_time_stamp_msec = 0
    _FREE.append(hist)
    return True


def percentiles_us(hist: HdrHistogram, percentiles: Iterable[float] = PERCENTILES) -> dict[float, int]:
    """Value at each percentile (us), same answer as hdrh's `get_value_at_percentile` but vectorised.

    hdrh walks its 23,552 counters in Python (~2 ms per call); a numpy cumsum makes per-second series cheap.
    The counters are C unsigned longs (uint64): summed as int64 through a view, not `cumsum(dtype=int64)`,
    whose uint64 -> int64 cast takes numpy's slow casting loop: 150 -> ~20 us per call (2 percentiles, 400
    values; every second's seal calls it once per path, SecondBucket.put). A count never nears 2**63.
    """
    total = int(hist.get_total_count())
    wanted = list(percentiles)
    if total == 0:
        return {p: 0 for p in wanted}
    counts = np.ctypeslib.as_array(hist.counts)
    # Another word size (a foreign histogram's narrower counters) takes a safe widening cast.
    cumulative = (np.cumsum(counts.view(np.int64)) if counts.dtype == np.uint64
                  else np.cumsum(counts, dtype=np.int64))
    out: dict[float, int] = {}
    for p in wanted:
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)  # hdrh get_target_count_at_percentile
        index = int(np.searchsorted(cumulative, target, side="left"))
        value = hist.get_value_from_index(index)
        edge = hist.get_highest_equivalent_value if p else hist.get_lowest_equivalent_value
        out[p] = int(edge(value))
    return out


# Lazily built: index -> median equivalent value, for the standard geometry.
_MEDIANS: list[np.ndarray[Any, Any]] = []


def mean_us(hist: HdrHistogram) -> float:
    """hdrh's get_mean_value (count-weighted median equivalent values), vectorised: hdrh iterates in Python
    (~0.5 s per call on the standard geometry)."""
    total = int(hist.get_total_count())
    if total == 0:
        return 0.0
    if (hist.lowest_trackable_value, hist.highest_trackable_value, hist.significant_figures) != (
            LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
        return float(hist.get_mean_value())
    if not _MEDIANS:
        _MEDIANS.append(np.array([hist._hdr_median_equiv_value(hist.get_value_from_index(i))
                                  for i in range(hist.counts_len)], dtype=np.float64))
    counts = np.ctypeslib.as_array(hist.counts).astype(np.float64)
    return float(counts @ _MEDIANS[0]) / total


class LatencyHistogram:
    """One labelled latency path: an HDR histogram plus clamp-and-count of impossible values."""

    __slots__ = ("_counts", "_mask", "_shift", "_unit", "hist", "name", "negative", "negative_reasons",
                 "overflow")

    def __init__(self, name: str, hist: HdrHistogram | None = None) -> None:
        self.name = name
        self.hist = hist if hist is not None else new_hdr()
        self.negative = 0  # values < 0 clamped to 0
        self.negative_reasons: dict[str, int] = {}
        self.overflow = 0  # values > 1 h clamped to 1 h
        # Cached hdrh geometry for the hot path (record_us below mirrors hdrh's _counts_index_for).
        self._counts = self.hist.counts
        self._mask = self.hist.sub_bucket_mask
        self._unit = self.hist.unit_magnitude
        self._shift = self.hist.sub_bucket_half_count_magnitude

    def free(self) -> None:
        """Let go of the counts now: hdrh's histogram and its encoder reference each other, so a dropped
        histogram (~90-190 KB of counters) otherwise waits for the cyclic collector, and adding up many seconds
        (a master's end of run: bench/seconds_memory.py) piles them up. Unusable afterwards. The counts go back to
        `new_hdr`'s pool while it has room (reuse, not re-allocation: see `_FREE`), else the cycle is broken."""
        if not release_hdr(self.hist):
            self.hist.encoder = None

    # -- recording -------------------------------------------------------------------------------------------
    def record_s(self, seconds: float, negative_reason: str = "clock_offset") -> None:
        """Record a latency given in seconds (rounded to the microsecond); the hot path, so record_us is
        inlined for the common in-range case (one Python call less per value)."""
        us = round(seconds * 1_000_000)
        if us < 0 or us > HIGHEST_US:
            self.record_us(us, negative_reason)
            return
        hist = self.hist
        unit = self._unit
        bucket = (us | self._mask).bit_length() - unit - (self._shift + 1)
        self._counts[((bucket + 1) << self._shift) + (us >> (bucket + unit)) - (1 << self._shift)] += 1
        hist.total_count += 1
        if us < hist.min_value:
            hist.min_value = us
        if us > hist.max_value:
            hist.max_value = us

    def record_us(self, us: int, negative_reason: str = "clock_offset") -> None:
        """Record a latency in microseconds; clamp-and-count negatives and values past 1 h.

        Equivalent to hdrh `record_value` (a unit test checks) at about a third of its cost: hdrh makes five
        method calls per value, which matters at tens of thousands of events per second.
        """
        if us < 0:
            self.negative += 1
            self.negative_reasons[negative_reason] = self.negative_reasons.get(negative_reason, 0) + 1
            us = 0
        elif us > HIGHEST_US:
            self.overflow += 1
            us = HIGHEST_US
        hist = self.hist
        unit = self._unit
        bucket = (us | self._mask).bit_length() - unit - (self._shift + 1)
        index = ((bucket + 1) << self._shift) + (us >> (bucket + unit)) - (1 << self._shift)
        self._counts[index] += 1
        hist.total_count += 1
        if us < hist.min_value:
            hist.min_value = us
        if us > hist.max_value:
            hist.max_value = us

    # -- reading ---------------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def summary_ms(self) -> dict[str, Any]:
        """{p50, p90, p99, p999, max, mean, count, negative, overflow} in ms; percentiles None when empty."""
        count = self.count
        out: dict[str, Any] = {"path": self.name}
        if count:
            pct = percentiles_us(self.hist)
            out.update(p50=pct[50.0] / 1000, p90=pct[90.0] / 1000, p99=pct[99.0] / 1000,
                       p999=pct[99.9] / 1000, max=self.hist.get_max_value() / 1000,
                       mean=round(mean_us(self.hist) / 1000, 3))
        else:
            out.update(p50=None, p90=None, p99=None, p999=None, max=None, mean=None)
        out.update(count=count, negative=self.negative, overflow=self.overflow)
        if self.negative_reasons:
            out["negative_reasons"] = dict(self.negative_reasons)
        return out

    def percentile_curve_ms(self, points: int = 60) -> list[tuple[float, float]]:
        """(percentile, ms) pairs evenly spaced on the 1/(1-p) axis up to p99.999 (the HdrHistogram plot)."""
        if not self.count:
            return []
        nines = np.linspace(0.0, 5.0, points)  # 0 -> p0, 5 -> p99.999
        pcts = [float(100.0 * (1.0 - 10.0 ** (-n))) for n in nines]
        values = percentiles_us(self.hist, pcts)
        return [(p, values[p] / 1000) for p in pcts]

    # -- merging and shipping --------------------------------------------------------------------------------
    def add(self, other: LatencyHistogram) -> None:
        """Merge another histogram of the same path (another worker, another second) into this one."""
        if other.count:
            was_empty = self.count == 0
            self.hist.add(other.hist)
            if was_empty:  # hdrh's add takes min(0, other) when this one is empty; keep the real minimum
                self.hist.min_value = other.hist.min_value
        self.negative += other.negative
        self.overflow += other.overflow
        for reason, n in other.negative_reasons.items():
            self.negative_reasons[reason] = self.negative_reasons.get(reason, 0) + n

    def encode(self) -> str:
        """The histogram as a base64 string (HdrHistogram V2 compressed format, readable by every port)."""
        raw = self.hist.encode()
        return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)

    def export(self) -> dict[str, Any]:
        """JSON-able: the encoded histogram and the clamp counters."""
        return {"name": self.name, "hdr": self.encode(), "negative": self.negative,
                "negative_reasons": dict(self.negative_reasons), "overflow": self.overflow}

    @classmethod
    def decode(cls, name: str, blob: str) -> LatencyHistogram:
        """Rebuild from `encode()` output (into the standard geometry, so it can be added to)."""
        decoded = HdrHistogram.decode(blob)
        if (decoded.lowest_trackable_value, decoded.highest_trackable_value, decoded.significant_figures) == (
                LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
            return cls(name, decoded)
        out = cls(name)  # another geometry (another tool's log): re-record into ours
        out.add(cls(name, decoded))
        return out

    @classmethod
    def from_export(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        out = cls.decode(str(data["name"]), str(data["hdr"]))
        out.negative = int(data.get("negative", 0))
        out.overflow = int(data.get("overflow", 0))
        out.negative_reasons = {str(k): int(v) for k, v in dict(data.get("negative_reasons", {})).items()}
        return out


class HistogramSet:
    """Named latency histograms (path name -> LatencyHistogram), created on first use."""

    __slots__ = ("paths",)

    def __init__(self) -> None:
        self.paths: dict[str, LatencyHistogram] = {}

    def get(self, name: str) -> LatencyHistogram:
        hist = self.paths.get(name)
        if hist is None:
            hist = self.paths[name] = LatencyHistogram(name)
        return hist

    def record_pair(self, raw: str, corrected: str, intended: float, sent: float, end: float,
                    negative_reason: str = "clock_offset") -> None:
        """Record one path raw (end - sent) and corrected (end - intended), both in seconds."""
        self.get(raw).record_s(end - sent, negative_reason)
        self.get(corrected).record_s(end - intended, negative_reason)

    def add(self, other: HistogramSet) -> None:
        for name, hist in other.paths.items():
            self.get(name).add(hist)

    def export(self) -> dict[str, dict[str, Any]]:
        return {name: hist.export() for name, hist in sorted(self.paths.items())}

    @classmethod
    def from_export(cls, data: Mapping[str, Mapping[str, Any]]) -> HistogramSet:
        out = cls()
        for name, item in data.items():
            out.paths[name] = LatencyHistogram.from_export(item)
        return out

    def summary_ms(self) -> dict[str, dict[str, Any]]:
        return {name: hist.summary_ms() for name, hist in sorted(self.paths.items())}
