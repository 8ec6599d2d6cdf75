"""The per-second time series of a run (timeseries.csv, the report's charts) and per-second histograms (hlog).

Live counters and the ack/send-lag percentiles come from the recorder's buckets; delivered, lost and the e2e
paths come from the post-run join (accounting), bucketed by arrival second (delivered, e2e) or intended second
(lost), all relative to the recorder's `start`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.metrics import names
from simulator.metrics.accounting import DELIVERED, Accounting
from simulator.metrics.histograms import HistogramSet, LatencyHistogram, percentiles_us
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


def _seconds(times: np.ndarray[Any, Any], start: float) -> np.ndarray[Any, Any]:
    return np.maximum(np.floor(times - start), 0).astype(np.int64)


def e2e_second_histograms(accounting: Accounting, start: float) -> dict[int, dict[str, LatencyHistogram]]:
    """second (of arrival) -> e2e path -> histogram of the events delivered in that second."""
    out: dict[int, dict[str, LatencyHistogram]] = {}
    for path, (arrivals, values) in accounting.latencies_s().items():
        secs = _seconds(arrivals, start).tolist()
        micros = np.rint(values * 1_000_000).astype(np.int64).tolist()
        for second, us in zip(secs, micros, strict=True):
            per_path = out.setdefault(second, {})
            hist = per_path.get(path)
            if hist is None:
                hist = per_path[path] = LatencyHistogram(path)
            hist.record_us(us, "observer_clock_behind")
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
        for second, per_path in e2e_second_histograms(accounting, recorder.start).items():
            target = out.setdefault(second, {})
            for path, hist in per_path.items():
                target[path] = (hist.encode(), hist.hist.get_max_value() / 1000)
    return out


def build_series(recorder: MetricsRecorder, accounting: Accounting | None = None,
                 duration_s: float | None = None) -> list[dict[str, Any]]:
    """One dict per second (keys = SERIES_COLUMNS; None where a path had no value that second), up to the
    run's last (partial) second when `duration_s` is given: idle tail seconds are rows of zeros, so the
    series and the report's x axis cover the whole run, not only up to the last event."""
    rows = recorder.second_rows()
    e2e: dict[int, dict[str, LatencyHistogram]] = {}
    delivered: dict[int, int] = {}
    lost: dict[int, int] = {}
    if accounting is not None:
        e2e = e2e_second_histograms(accounting, recorder.start)
        ok = accounting.outcome == DELIVERED
        secs, counts = np.unique(_seconds(accounting.first_arrival[ok], recorder.start), return_counts=True)
        delivered = dict(zip(secs.tolist(), counts.tolist(), strict=True))
        is_lost = accounting.outcome >= 2
        secs, counts = np.unique(_seconds(accounting.intended[is_lost], recorder.start), return_counts=True)
        lost = dict(zip(secs.tolist(), counts.tolist(), strict=True))
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
                hist = e2e.get(second, {}).get(path)
                if hist is None:
                    item[f"{path}_p50_ms"] = item[f"{path}_p99_ms"] = None
                else:
                    pct = percentiles_us(hist.hist, (50.0, 99.0))
                    item[f"{path}_p50_ms"], item[f"{path}_p99_ms"] = pct[50.0] / 1000, pct[99.0] / 1000
        out.append(item)
    return out
