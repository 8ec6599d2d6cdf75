"""One second of a run: counters and latency histograms that seal (encode, free) once the second is old."""

from __future__ import annotations

from simulator.metrics.histograms import HistogramSet, LatencyHistogram, percentiles_us

__all__ = ["COUNTERS", "SecondBucket"]

# Per-second counters, in timeseries.csv column order.
COUNTERS = ("offered", "sent", "acked", "publish_errors", "ack_errors", "delivered")


class SecondBucket:
    """Counters and latency histograms of one second of the run.

    A value is recorded once, into its second's live histogram; sealing adds the live histogram into the run
    totals (`into`) and merges it into the sealed encoding. That halves the hot-path cost against recording
    every value twice (totals + second), and a late value for a sealed second only costs a fresh histogram.
    """

    __slots__ = ("counts", "hists", "online", "sealed", "stats")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.online: int | None = None  # devices online at the last update within this second
        self.hists: dict[str, LatencyHistogram] = {}  # live, not yet in the totals
        self.sealed: dict[str, str] = {}  # path -> encoded histogram (everything sealed so far)
        # path -> (p50 ms, p99 ms, count, max ms) of everything sealed so far
        self.stats: dict[str, tuple[float, float, int, float]] = {}

    def hist(self, path: str) -> LatencyHistogram:
        hist = self.hists.get(path)
        if hist is None:
            hist = self.hists[path] = LatencyHistogram(path)
        return hist

    def seal(self, into: HistogramSet | None) -> None:
        """Add live histograms to `into` (the run totals) and fold them into the sealed encodings."""
        for path, live in self.hists.items():
            if into is not None:
                into.get(path).add(live)
            old = self.sealed.get(path)
            hist = live
            if old is not None:  # a late value reopened a sealed second
                hist = LatencyHistogram.decode(path, old)
                hist.add(live)
            self.put(path, hist)
        self.hists.clear()

    def put(self, path: str, hist: LatencyHistogram) -> None:
        pct = percentiles_us(hist.hist, (50.0, 99.0))
        top = hist.hist.get_max_value() / 1000
        self.stats[path] = (pct[50.0] / 1000, pct[99.0] / 1000, hist.count, top)
        self.sealed[path] = hist.encode()

    def encoded_with_max(self) -> dict[str, tuple[str, float]]:
        """path -> (encoded histogram, max ms): what latency.hlog writes per interval (seal first)."""
        return {path: (blob, self.stats[path][3]) for path, blob in self.sealed.items()}
