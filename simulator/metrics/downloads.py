"""Download figures of a `download: fetch` run, from the devices' DownloadStats (simulator.metrics.campaign). Pure.

Throughput in MB/s (10^6 bytes per second): per download = body bytes / (request sent -> last byte) of the
attempt that completed; aggregate = all completed bytes / (first completed download's start -> last one's end),
i.e. what the image server delivered to the fleet while downloads ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from simulator.metrics.quantile_tally import QuantileTally

__all__ = ["DownloadSummary", "DownloadTally", "summarize_downloads"]


class _Stats(Protocol):
    @property
    def attempts(self) -> int: ...
    @property
    def errors(self) -> tuple[str, ...]: ...
    @property
    def bytes(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def done_at(self) -> float: ...


@dataclass(frozen=True)
class DownloadSummary:
    operations: int  # operations that downloaded (at least one attempt)
    completed: int  # of which one attempt received every announced byte
    attempts: int
    failed_attempts: int
    errors: dict[str, int] = field(default_factory=dict)  # failed attempts by reason (before any ':' detail)
    bytes: int = 0
    per_download_mbps_p50: float | None = None
    per_download_mbps_min: float | None = None
    aggregate_mbps: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DownloadTally:
    """`summarize_downloads`, one operation's stats at a time (issue 14: the process writing the results keeps
    counters and a QuantileTally of per-download rates, not every operation's stats)."""

    __slots__ = ("attempts", "bytes", "completed", "errors", "failed_attempts", "first_start", "last_done",
                 "operations", "rates")

    def __init__(self) -> None:
        self.operations = self.completed = self.attempts = self.failed_attempts = self.bytes = 0
        self.errors: Counter[str] = Counter()
        # MB/s; the histogram's unit (once past EXACT_MAX downloads) is 1 kB/s.
        self.rates = QuantileTally(scale=1e3)
        self.first_start: float | None = None  # min(done_at - seconds) of completed downloads, wall s
        self.last_done: float | None = None

    def add(self, s: _Stats) -> None:
        self.operations += 1
        self.attempts += s.attempts
        self.failed_attempts += len(s.errors)
        self.errors.update(e.split(":", 1)[0] for e in s.errors)
        if s.bytes > 0 and s.seconds > 0:
            self.completed += 1
            self.bytes += s.bytes
            self.rates.add(s.bytes / s.seconds / 1e6)
            began = s.done_at - s.seconds
            self.first_start = began if self.first_start is None else min(self.first_start, began)
            self.last_done = s.done_at if self.last_done is None else max(self.last_done, s.done_at)

    def summary(self) -> DownloadSummary | None:
        if self.operations == 0:
            return None
        aggregate = None
        if self.first_start is not None and self.last_done is not None:
            span = self.last_done - self.first_start
            aggregate = round(self.bytes / span / 1e6, 3) if span > 0 else None
        p50, low = self.rates.rank(50), self.rates.min
        return DownloadSummary(
            operations=self.operations, completed=self.completed, attempts=self.attempts,
            failed_attempts=self.failed_attempts, errors=dict(self.errors), bytes=self.bytes,
            per_download_mbps_p50=None if p50 is None else round(p50, 3),
            per_download_mbps_min=None if low is None else round(low, 3), aggregate_mbps=aggregate)


def summarize_downloads(stats: Iterable[_Stats]) -> DownloadSummary | None:
    tally = DownloadTally()
    for s in stats:
        tally.add(s)
    return tally.summary()
