"""latency.hlog: the HdrHistogram interval log (format 1.3), one interval per second per latency path.

Written with hdrh's HistogramLogWriter; each line carries `Tag=<path>` (names.SERIES_PATHS) so HdrHistogram
tools (HistogramLogAnalyzer, hdrh's HistogramLogReader) can split the paths. Timestamps are seconds
relative to the run's start (the `#[StartTime: ...]` header, epoch seconds); values are microseconds; the
Interval_Max column is in milliseconds. The header line of hdrh's own `output_start_time` is broken in
hdrh 0.10 (it calls a nonexistent `datetime.iso_format`), so that comment is written here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from hdrh.log import HistogramLogWriter

from simulator.errors import UsageError
from simulator.metrics.histograms import HistogramSet, LatencyHistogram

__all__ = ["HLOG_FILE", "read_hlog", "write_hlog"]

HLOG_FILE = "latency.hlog"
PathLike = str | os.PathLike[str]


class _Encoded:
    """Just what HistogramLogWriter asks of a histogram: its encoding and its max (us)."""

    __slots__ = ("_blob", "_max_us")

    def __init__(self, blob: str, max_ms: float) -> None:
        self._blob = blob
        self._max_us = round(max_ms * 1000)

    def encode(self) -> bytes:
        return self._blob.encode("ascii")

    def get_max_value(self) -> int:
        return self._max_us

    def get_start_time_stamp(self) -> int:
        return 0

    def get_end_time_stamp(self) -> int:
        return 0


def write_hlog(path: PathLike, seconds: Mapping[int, Mapping[str, tuple[str, float]]]
               | Iterable[tuple[int, Mapping[str, tuple[str, float]]]], start: float) -> Path:
    """`seconds`: second -> path -> (encoded histogram, max ms), as metrics.series.second_histograms gives, or
    (second, paths) pairs in ascending order, as iter_second_histograms gives (written as they come)."""
    intervals = ((second, seconds[second]) for second in sorted(seconds)) if isinstance(seconds, Mapping) \
        else seconds
    with open(path, "w", encoding="utf-8") as f:
        writer = HistogramLogWriter(f)
        writer.output_comment("[Logged with fleetsim: latency in microseconds; Interval_Max in milliseconds]")
        writer.output_comment("[Histogram log format version 1.3]")
        iso = datetime.fromtimestamp(start, tz=UTC).isoformat()
        f.write(f"#[StartTime: {start:.3f} (seconds since epoch), {iso}]\n")
        writer.output_legend()
        for second, paths in intervals:
            for tag, (blob, max_ms) in sorted(paths.items()):
                f.write(f"Tag={tag},")
                # end given explicitly: the writer falls back to the histogram's own stamps when a value is 0
                writer.output_interval_histogram(
                    _Encoded(blob, max_ms), float(second), float(second + 1), max_value_unit_ratio=1000.0
                )
    return Path(path)


def read_hlog(path: PathLike) -> HistogramSet:
    """The whole run per tag (every interval added up); lines without a tag go under "untagged".

    Intervals are not kept one by one: a live 3-digit histogram is ~190 KB (per-second percentiles are in
    timeseries.csv instead).
    """
    totals = HistogramSet()
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                line = line.strip()
                if not line or line.startswith("#") or line.startswith('"'):
                    continue
                tag = "untagged"
                if line.startswith("Tag="):
                    tag, _, line = line[4:].partition(",")
                fields = line.split(",")
                try:
                    if len(fields) != 4:
                        raise ValueError(f"expected 4 fields, got {len(fields)}")
                    float(fields[0])
                    hist = LatencyHistogram.decode(tag, fields[3])
                except Exception as exc:  # hdrh raises assorted errors on a corrupt payload
                    raise UsageError(f"{path}:{number}: interval histogram: {exc}") from None
                totals.get(tag).add(hist)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    return totals
