"""The per-second time series of a run (timeseries.csv, the report's charts) and per-second histograms (hlog).

Live counters and the ack/send-lag percentiles come from the recorder's buckets; delivered, lost and the e2e
paths come from the join (accounting), bucketed by arrival second (delivered, e2e) or intended second (lost),
relative to the join's `start` (the recorder's, shifted by whole seconds when they differ).

Both are built as iterators, one second at a time, in order (issue 14): the recorder's and the join's seconds
may be on disk (metrics.second_spool), and a one-hour run's ~3 KB per second are never all read back at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from simulator.metrics import names
from simulator.metrics.accounting import Accounting
from simulator.metrics.histograms import HistogramSet, LatencyHistogram
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.second_bucket import SecondBucket

__all__ = [
    "SERIES_COLUMNS", "build_series", "combined_histograms", "e2e_second_histograms", "iter_second_histograms",
    "iter_series", "second_histograms",
]

SERIES_COLUMNS: tuple[str, ...] = (
    "second", "offered", "sent", "acked", "delivered", "lost", "publish_errors", "ack_errors",
    "devices_online",
    *(f"{path}_{p}_ms" for path in names.SERIES_PATHS for p in ("p50", "p99")),
)
_E2E_PATHS = (names.PATH_E2E, names.PATH_E2E_CORRECTED, names.PATH_E2E_DEVICE_T)


def _shift(accounting: Accounting, start: float) -> int:
    return round(accounting.start - start)


def _join_seconds(accounting: Accounting, start: float) -> Iterator[tuple[int, SecondBucket]]:
    """The join's seconds moved into the recorder's frame (clamped at 0; merged where clamping joins them)."""
    shift = _shift(accounting, start)
    head: SecondBucket | None = None
    for sec, bucket in accounting.items():
        second = sec + shift
        if second <= 0:
            if head is None:
                head = bucket
            else:
                merged = SecondBucket()
                merged.absorb(head)
                merged.absorb(bucket)
                head = merged
            continue
        if head is not None:
            yield 0, head
            head = None
        yield second, bucket
    if head is not None:
        yield 0, head


def e2e_second_histograms(accounting: Accounting, start: float) -> dict[int, dict[str, LatencyHistogram]]:
    """second (of arrival) -> e2e path -> histogram of the events delivered in that second."""
    out: dict[int, dict[str, LatencyHistogram]] = {}
    for second, bucket in _join_seconds(accounting, start):
        for path, blob in bucket.sealed.items():
            out.setdefault(second, {})[path] = LatencyHistogram.decode(path, blob)
    return out


def combined_histograms(recorder: MetricsRecorder, accounting: Accounting | None = None) -> HistogramSet:
    """The run's histograms: the recorder's, plus the e2e paths of the join. With a join, its e2e_device_t
    replaces the recorder's live one (the same arrivals, counted once)."""
    out = HistogramSet()
    for path, hist in recorder.histograms.paths.items():
        if accounting is None or path not in _E2E_PATHS:
            out.get(path).add(hist)
    if accounting is not None:
        out.add(accounting.histograms())
    return out


def iter_second_histograms(recorder: MetricsRecorder, accounting: Accounting | None = None) -> Iterator[
        tuple[int, dict[str, tuple[str, float]]]]:
    """(second, path -> (encoded histogram, max ms)) over every series path, ascending: latency.hlog's
    intervals. The join's e2e paths replace the recorder's of the same second (as `second_histograms` did)."""
    mine = ((s, b.encoded_with_max()) for s, b in recorder.items())
    if accounting is None:
        yield from mine
        return
    joined = ((s, b.encoded_with_max()) for s, b in _join_seconds(accounting, recorder.start) if b.sealed)
    yield from _zip_seconds(mine, joined)


def _zip_seconds(left: Iterator[tuple[int, dict[str, tuple[str, float]]]],
                 right: Iterator[tuple[int, dict[str, tuple[str, float]]]]) -> Iterator[
        tuple[int, dict[str, tuple[str, float]]]]:
    """Two ascending (second, paths) series as one: a second in both gets the right's paths over the left's."""
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a
            a = next(left, None)
        elif a is None or b[0] < a[0]:
            yield b
            b = next(right, None)
        else:
            yield a[0], {**a[1], **b[1]}
            a, b = next(left, None), next(right, None)


def second_histograms(recorder: MetricsRecorder,
                      accounting: Accounting | None = None) -> dict[int, dict[str, tuple[str, float]]]:
    """second -> path -> (encoded histogram, max ms) over every series path, for latency.hlog (the whole run in
    memory: tests; the results are written from `iter_second_histograms`)."""
    return dict(iter_second_histograms(recorder, accounting))


def build_series(recorder: MetricsRecorder, accounting: Accounting | None = None,
                 duration_s: float | None = None) -> list[dict[str, Any]]:
    """`iter_series` as a list (the whole run in memory: tests)."""
    return list(iter_series(recorder, accounting, duration_s))


def _join_rows(accounting: Accounting | None, start: float) -> Iterator[tuple[int, int, int,
                                                                             dict[str, tuple[float, float, int,
                                                                                             float]]]]:
    """(second, delivered, lost, e2e stats) of the join's seconds that have any of them, ascending."""
    if accounting is None:
        return
    for second, bucket in _join_seconds(accounting, start):
        delivered, lost = bucket.counts.get("delivered", 0), bucket.counts.get("lost", 0)
        if delivered or lost or bucket.stats:
            yield second, delivered, lost, bucket.stats


def iter_series(recorder: MetricsRecorder, accounting: Accounting | None = None,
                duration_s: float | None = None) -> Iterator[dict[str, Any]]:
    """One dict per second (keys = SERIES_COLUMNS; None where a path had no value that second), up to the
    run's last (partial) second when `duration_s` is given: idle tail seconds are rows of zeros, so the
    series and the report's x axis cover the whole run, not only up to the last event; and up to the join's
    last second (arrivals after the generator's last second: the grace period)."""
    until = math.ceil(duration_s) - 1 if duration_s is not None and duration_s > 0 else -1
    rows = recorder.iter_rows()
    joined = _join_rows(accounting, recorder.start)
    pending = next(joined, None)
    online = 0
    second = 0
    while True:
        row = next(rows, None)
        if row is None:
            if second > until and pending is None:
                return
            row = {"second": second, **dict.fromkeys(("offered", "sent", "acked", "publish_errors", "ack_errors",
                                                      "delivered"), 0), "devices_online": online}
        online = row["devices_online"]
        item: dict[str, Any] = {col: row.get(col) for col in SERIES_COLUMNS}
        item["lost"] = 0
        stats: dict[str, tuple[float, float, int, float]] = {}
        if pending is not None and pending[0] == second:
            item["lost"] = pending[2]
            stats = pending[3]
            delivered = pending[1]
            pending = next(joined, None)
        else:
            delivered = 0
        if accounting is not None:
            item["delivered"] = delivered
            for path in _E2E_PATHS:
                if path in stats:
                    item[f"{path}_p50_ms"], item[f"{path}_p99_ms"] = stats[path][0], stats[path][1]
                else:
                    item[f"{path}_p50_ms"] = item[f"{path}_p99_ms"] = None
        yield item
        second += 1
