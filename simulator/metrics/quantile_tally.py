"""Nearest-rank percentiles of a stream of non-negative values in bounded memory (campaign latencies, rates).

Why two regimes: campaign reports have always given exact nearest-rank percentiles (simulator.metrics.campaign
LatencySummary), and a run of a few thousand operations should keep them exactly. Issue 14 wants the process
that writes the results to hold memory that grows with devices, not with operations, so past `EXACT_MAX` values
the tally moves them into an HDR histogram (simulator.metrics.histograms: 3 significant digits, 0.1 %
resolution, 184 KiB whatever the count) and answers from it. Count, min and max stay exact in both regimes.

Values are in the caller's unit; `scale` maps them to the histogram's integer unit (1e6: seconds -> us). A value
that scales outside the histogram's range [1, 1 h in us] is clamped into it for the histogram only (min/max
keep the true value) and counted in `clamped`, so nothing is rounded away silently.
"""

from __future__ import annotations

import math

from hdrh.histogram import HdrHistogram

from simulator.metrics.histograms import HIGHEST_US, LOWEST_US, new_hdr

__all__ = ["EXACT_MAX", "QuantileTally"]

# Values kept exactly before switching to the histogram: 10,000 floats are ~80 KB as a list of Python floats'
# pointers plus the floats (~320 KB worst case), the size of two HDR histograms; a campaign on a few thousand
# devices stays exact.
EXACT_MAX = 10_000


class QuantileTally:
    """count, min, max and nearest-rank percentiles of the values added (exact up to `exact_max` values)."""

    __slots__ = ("_exact", "_hdr", "clamped", "count", "exact_max", "max", "min", "scale")

    def __init__(self, scale: float = 1e6, exact_max: int = EXACT_MAX) -> None:
        self.scale = scale
        self.exact_max = exact_max
        self.count = 0
        self.min: float | None = None
        self.max: float | None = None
        self.clamped = 0  # values clamped into the histogram's range (only once it is in use)
        self._exact: list[float] | None = []
        self._hdr: HdrHistogram | None = None

    @property
    def exact(self) -> bool:
        """True while percentiles are exact nearest-rank values (every value is still held)."""
        return self._exact is not None

    def add(self, value: float) -> None:
        self.count += 1
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max
        if self._exact is not None:
            self._exact.append(value)
            if len(self._exact) > self.exact_max:
                held, self._exact = self._exact, None
                self._hdr = new_hdr()
                for v in held:
                    self._record(v)
            return
        self._record(value)

    def _record(self, value: float) -> None:
        assert self._hdr is not None
        scaled = round(value * self.scale)
        if scaled < LOWEST_US or scaled > HIGHEST_US:
            self.clamped += 1
            scaled = min(HIGHEST_US, max(LOWEST_US, scaled))
        self._hdr.record_value(scaled)

    def rank(self, p: float) -> float | None:
        """The nearest-rank p-th percentile (None: no values). The histogram's answer is its bucket's highest
        equivalent value (within 0.1 %), capped at the exact max."""
        if self.count == 0:
            return None
        if self._exact is not None:
            ordered = self._exact
            ordered.sort()  # in place: the order values came in means nothing, and a second call is O(n)
            return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]
        assert self._hdr is not None and self.max is not None
        return min(self.max, int(self._hdr.get_value_at_percentile(p)) / self.scale)
