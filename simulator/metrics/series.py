"""The per-second time series of a run (timeseries.csv, the report's charts) and per-second histograms (hlog).

Live counters and the ack/send-lag percentiles come from the recorder's buckets; delivered, lost and the e2e
paths come from the join (accounting), bucketed by arrival second (delivered, e2e) or intended second (lost),
relative to the join's `start` (the recorder's, shifted by whole seconds when they differ).
"""

from __future__ import annotations

import math
from typing import Any

from simulator.metrics import names
from simulator.metrics.accounting import Accounting
from simulator.metrics.histograms import HistogramSet, LatencyHistogram
from simulator.metrics.recorder import MetricsRecorder

__all__ = [
    "SERIES_COLUMNS", "build_series", "combined_histograms", "e2e_second_histograms", "second_histograms",
]

SERIES_COLUMNS: tuple[str, ...] = (
    "second", "offered", "sent", "acked", "delivered", "lost", "publish_errors", "ack_errors",
    "devices_online",
    *(f"{path}_{p}_ms" for path in names.SERIES_PATHS for p in ("p50", "p99")),
)
_E2E_PATHS = (names.PATH_E2E, names.PATH_E2E_CORRECTED, names.PATH_E2E_DEVICE_T)


def _shift(accounting: Accounting, start: float) -> int:
    return round(accounting.start - start)


def e2e_second_histograms(accounting: Accounting, start: float) -> dict[int, dict[str, LatencyHistogram]]:
    """second (of arrival) -> e2e path -> histogram of the events delivered in that second."""
    shift = _shift(accounting, start)
    out: dict[int, dict[str, LatencyHistogram]] = {}
    for second, bucket in accounting.items():
        for path, blob in bucket.sealed.items():
            out.setdefault(max(0, second + shift), {})[path] = LatencyHistogram.decode(path, blob)
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


def second_histograms(recorder: MetricsRecorder,
                      accounting: Accounting | None = None) -> dict[int, dict[str, tuple[str, float]]]:
    """second -> path -> (encoded histogram, max ms) over every series path, for latency.hlog."""
    out = recorder.second_histograms()
    if accounting is not None:
        shift = _shift(accounting, recorder.start)
        for second, bucket in accounting.items():
            if bucket.sealed:
                out.setdefault(max(0, second + shift), {}).update(bucket.encoded_with_max())
    return out


def build_series(recorder: MetricsRecorder, accounting: Accounting | None = None,
                 duration_s: float | None = None) -> list[dict[str, Any]]:
    """One dict per second (keys = SERIES_COLUMNS; None where a path had no value that second), up to the
    run's last (partial) second when `duration_s` is given: idle tail seconds are rows of zeros, so the
    series and the report's x axis cover the whole run, not only up to the last event."""
    rows = recorder.second_rows()
    e2e: dict[int, dict[str, tuple[float, float, int, float]]] = {}
    delivered: dict[int, int] = {}
    lost: dict[int, int] = {}
    if accounting is not None:
        shift = _shift(accounting, recorder.start)
        for sec, bucket in accounting.items():
            second = max(0, sec + shift)
            if bucket.counts.get("delivered"):
                delivered[second] = delivered.get(second, 0) + bucket.counts["delivered"]
            if bucket.counts.get("lost"):
                lost[second] = lost.get(second, 0) + bucket.counts["lost"]
            if bucket.stats:
                e2e.setdefault(second, {}).update(bucket.stats)
    until = math.ceil(duration_s) - 1 if duration_s is not None and duration_s > 0 else -1
    last = max([len(rows) - 1, until, *delivered, *lost, *e2e], default=-1)
    online = rows[-1]["devices_online"] if rows else 0
    while len(rows) <= last:  # idle tail, or arrivals after the generator's last second (the grace period)
        rows.append({"second": len(rows), **dict.fromkeys(("offered", "sent", "acked", "publish_errors",
                                                             "ack_errors", "delivered"), 0),
                     "devices_online": online})
    out: list[dict[str, Any]] = []
    for row in rows:
        second = row["second"]
        item: dict[str, Any] = {col: row.get(col) for col in SERIES_COLUMNS}
        item["lost"] = lost.get(second, 0)
        if accounting is not None:
            item["delivered"] = delivered.get(second, 0)
            for path in _E2E_PATHS:
                stats = e2e.get(second, {}).get(path)
                if stats is None:
                    item[f"{path}_p50_ms"] = item[f"{path}_p99_ms"] = None
                else:
                    item[f"{path}_p50_ms"], item[f"{path}_p99_ms"] = stats[0], stats[1]
        out.append(item)
    return out
