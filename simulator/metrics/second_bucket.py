"""One second of a run: counters and latency histograms that seal (encode, free) once the second is old."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from simulator.metrics.histograms import HistogramSet, LatencyHistogram, percentiles_us, release_hdr

__all__ = ["COUNTERS", "SecondBucket", "SecondsInbox", "export_seconds", "merge_seconds", "move_seconds"]

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
            release_hdr(live.hist)  # encoded and added: nothing refers to it any more (histograms._FREE)
        self.hists.clear()

    def put(self, path: str, hist: LatencyHistogram) -> None:
        pct = percentiles_us(hist.hist, (50.0, 99.0))
        top = hist.hist.get_max_value() / 1000
        self.stats[path] = (pct[50.0] / 1000, pct[99.0] / 1000, hist.count, top)
        self.sealed[path] = hist.encode()

    def absorb(self, other: SecondBucket) -> None:
        """Add another sealed bucket of the same second (another worker's) into this sealed one (the caller
        seals both first: a live histogram here would miss the run totals)."""
        for counter, n in other.counts.items():
            self.counts[counter] = self.counts.get(counter, 0) + n
        if other.online is not None:
            self.online = (self.online or 0) + other.online
        for path, blob in other.sealed.items():
            hist = LatencyHistogram.decode(path, blob)
            if path in self.sealed:
                hist.add(LatencyHistogram.decode(path, self.sealed[path]))
            self.put(path, hist)

    def encoded_with_max(self) -> dict[str, tuple[str, float]]:
        """path -> (encoded histogram, max ms): what latency.hlog writes per interval (seal first)."""
        return {path: (blob, self.stats[path][3]) for path, blob in self.sealed.items()}


def export_seconds(buckets: Mapping[int, SecondBucket]) -> dict[str, dict[str, Any]]:
    """Sealed buckets as msgpack/JSON-able data (what a worker ships): second -> counts, online, encoded hdr."""
    return {str(second): {"counts": dict(b.counts), "online": b.online, "hdr": dict(b.sealed)}
            for second, b in sorted(buckets.items())}


def merge_seconds(into: MutableMapping[int, SecondBucket], seconds: Mapping[str, Any], shift: int) -> int:
    """Add `export_seconds` data into `into`, each second moved by `shift` (clamped at 0); returns the newest
    second touched (-1: none). Blob level only: a run's totals travel separately (MetricsRecorder.export)."""
    newest = -1
    for key, item in seconds.items():
        second = max(0, int(key) + shift)
        bucket = into.get(second)
        if bucket is None:
            bucket = into[second] = SecondBucket()
        for counter, n in dict(item["counts"]).items():
            bucket.counts[counter] = bucket.counts.get(counter, 0) + int(n)
        if item.get("online") is not None:
            bucket.online = (bucket.online or 0) + int(item["online"])
        for path, blob in dict(item["hdr"]).items():
            hist = LatencyHistogram.decode(path, blob)
            if path in bucket.sealed:
                hist.add(LatencyHistogram.decode(path, bucket.sealed[path]))
            bucket.put(path, hist)
        newest = max(newest, second)
    return newest


def move_seconds(into: MutableMapping[int, SecondBucket], buckets: Mapping[int, SecondBucket], shift: int) -> int:
    """Move sealed buckets into `into` (second + shift, clamped at 0): a second `into` lacks takes the bucket
    object as is (no decode/encode), one it has absorbs it. Returns the newest second touched (-1: none)."""
    newest = -1
    for second, bucket in buckets.items():
        target = max(0, second + shift)
        existing = into.get(target)
        if existing is None:
            into[target] = bucket
        else:
            existing.absorb(bucket)
        newest = max(newest, target)
    return newest


class SecondsInbox:
    """The sealed seconds one worker shipped with its periodic reports, merged as they come (issue 14), in that
    worker's own seconds (second 0 = its `start`, wall s): moved into the run's books once, at the end, by the
    same whole-second shift as its final message's seconds."""

    __slots__ = ("seconds", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.seconds: dict[int, SecondBucket] = {}

    def add(self, shipped: Mapping[str, Any]) -> None:
        """One report's {"start", "seconds"} (MetricsRecorder.take_sealed / OnlineJoin.take_sealed)."""
        merge_seconds(self.seconds, shipped["seconds"], round(float(shipped["start"]) - self.start))

    def move_into(self, into: MutableMapping[int, SecondBucket], start: float) -> int:
        """Move every second into `into` (whose second 0 is `start`), emptying this inbox; the newest second
        touched (-1: none)."""
        newest = move_seconds(into, self.seconds, round(self.start - start))
        self.seconds = {}
        return newest
