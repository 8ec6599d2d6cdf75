"""Download figures of a `download: fetch` run, from the devices' DownloadStats (simulator.metrics.campaign). Pure.

Throughput in MB/s (10^6 bytes per second): per download = body bytes / (request sent -> last byte) of the
attempt that completed; aggregate = all completed bytes / (first completed download's start -> last one's end),
i.e. what the image server delivered to the fleet while downloads ran.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["DownloadSummary", "summarize_downloads"]


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


def _rank(ordered: list[float], p: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def summarize_downloads(stats: Iterable[_Stats]) -> DownloadSummary | None:
    items = list(stats)
    if not items:
        return None
    done = [s for s in items if s.bytes > 0 and s.seconds > 0]
    rates = sorted(s.bytes / s.seconds / 1e6 for s in done)
    errors = Counter(e.split(":", 1)[0] for s in items for e in s.errors)
    total = sum(s.bytes for s in done)
    aggregate = None
    if done:
        span = max(s.done_at for s in done) - min(s.done_at - s.seconds for s in done)
        aggregate = round(total / span / 1e6, 3) if span > 0 else None
    return DownloadSummary(
        operations=len(items), completed=len(done), attempts=sum(s.attempts for s in items),
        failed_attempts=sum(len(s.errors) for s in items), errors=dict(errors), bytes=total,
        per_download_mbps_p50=round(_rank(rates, 50), 3) if rates else None,
        per_download_mbps_min=round(rates[0], 3) if rates else None, aggregate_mbps=aggregate)
