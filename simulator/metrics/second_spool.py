"""Sealed seconds of a run kept on disk once they are old, so the process that writes the results holds a window.

Issue 14: the per-second buckets (counters and four encoded HDR histograms, ~3 KB per second of run measured on
the master) were all held until the results were written: ~11 MB for an hour, growing with the run's length.
A spool keeps the seconds within `hold` seconds of the newest one it was given in memory (a worker's report or a
late ack still adds into them cheaply) and appends older ones, once, to an anonymous temporary file (deleted
when the spool is closed or collected) as one JSON line each: counters, devices online, encoded histograms and
their (p50, p99, count, max) stats, so reading back costs no percentile computation.

Lines of the file are in strictly increasing second order. A value for a second already written (an ack more
than `hold` seconds late, a worker's report that late) lands in a small in-memory `late` map instead, merged
when the spool is read: those are rare, and each costs one bucket whatever the run's length.
`items()` reads the file back one line at a time, so the end of the run holds one second at a time too.
"""

from __future__ import annotations

import heapq
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from simulator.metrics.second_bucket import SecondBucket, merge_seconds

__all__ = ["DEFAULT_HOLD_S", "SecondSpool", "bucket_from_line", "bucket_to_line", "merge_items"]

# Seconds kept in memory behind the newest: a Locust worker reports every 3 s and ships a second once it is
# 5 s old (MetricsRecorder.open_seconds), so its seconds arrive here < 10 s behind the newest; the join's
# seconds close at its grace (finish.GRACE_S, 10 s). 60 s leaves a wide margin for a loaded machine, and costs
# ~180 KB (60 x ~3 KB).
DEFAULT_HOLD_S = 60


def bucket_to_line(second: int, bucket: SecondBucket) -> str:
    """One sealed bucket as a JSON line (the bucket must be sealed: live histograms are not written)."""
    return json.dumps({"s": second, "counts": bucket.counts, "online": bucket.online, "hdr": bucket.sealed,
                       "stats": {path: list(v) for path, v in bucket.stats.items()}},
                      separators=(",", ":")) + "\n"


def bucket_from_line(line: str) -> tuple[int, SecondBucket]:
    """The (second, sealed bucket) a `bucket_to_line` line holds."""
    doc = json.loads(line)
    bucket = SecondBucket()
    bucket.counts = {str(k): int(v) for k, v in dict(doc["counts"]).items()}
    bucket.online = None if doc["online"] is None else int(doc["online"])
    bucket.sealed = {str(k): str(v) for k, v in dict(doc["hdr"]).items()}
    bucket.stats = {str(k): (float(v[0]), float(v[1]), int(v[2]), float(v[3]))
                    for k, v in dict(doc["stats"]).items()}
    return int(doc["s"]), bucket


class SecondSpool:
    """Sealed seconds (SecondBucket) of one frame (second 0 = some start): recent ones in memory, older ones on
    disk; `items()` gives every second once, in order, with everything added for it merged."""

    __slots__ = ("_file", "_written", "hold", "late", "newest", "recent", "spilled")

    def __init__(self, hold: int = DEFAULT_HOLD_S) -> None:
        self.hold = hold
        self.recent: dict[int, SecondBucket] = {}
        self.late: dict[int, SecondBucket] = {}  # seconds already on disk that got more afterwards (rare)
        self.newest = -1
        self._written = -1  # the newest second on disk: every line is older than the next one
        self.spilled = 0  # seconds written (for tests and the memory bench)
        self._file: IO[str] | None = None

    def add(self, second: int, bucket: SecondBucket) -> None:
        """Take a sealed bucket (the spool may keep the object itself: the caller gives it up)."""
        if second <= self._written:
            _put(self.late, second, bucket)
        else:
            _put(self.recent, second, bucket)
        if second > self.newest:
            self.newest = second
            self._spill_before(second - self.hold)

    def add_shipped(self, seconds: Mapping[str, Any], shift: int) -> int:
        """Add `export_seconds` data, each second moved by `shift` (clamped at 0); the newest second touched."""
        parsed: dict[int, SecondBucket] = {}
        newest = merge_seconds(parsed, seconds, shift)
        for second in sorted(parsed):
            self.add(second, parsed[second])
        return newest

    def _spill_before(self, limit: int) -> None:
        old = sorted(s for s in self.recent if s < limit)
        if not old:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - lives with the spool
        self._file.seek(0, 2)
        for second in old:
            self._file.write(bucket_to_line(second, self.recent.pop(second)))
        self._written = old[-1]
        self.spilled += len(old)

    def items(self) -> Iterator[tuple[int, SecondBucket]]:
        """Every second, ascending, each once (disk lines, late additions and recent seconds merged). The spool
        must not be added to while this is iterated."""
        pending = sorted({**{s: None for s in self.late}, **{s: None for s in self.recent}})
        extra = self.late, self.recent
        index = 0
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            for line in self._file:
                second, bucket = bucket_from_line(line)
                while index < len(pending) and pending[index] < second:
                    yield pending[index], _merged(pending[index], extra)
                    index += 1
                if index < len(pending) and pending[index] == second:
                    for more in extra:
                        if second in more:
                            bucket.absorb(more[second])
                    index += 1
                yield second, bucket
        while index < len(pending):
            yield pending[index], _merged(pending[index], extra)
            index += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _put(into: dict[int, SecondBucket], second: int, bucket: SecondBucket) -> None:
    existing = into.get(second)
    if existing is None:
        into[second] = bucket
    else:
        existing.absorb(bucket)


def _merged(second: int, sources: tuple[dict[int, SecondBucket], ...]) -> SecondBucket:
    """The bucket of `second` over sources (a copy when both have it: items() must not change the spool)."""
    return _combined([src[second] for src in sources if second in src])


def merge_items(sources: Iterable[Iterator[tuple[int, SecondBucket]]]) -> Iterator[tuple[int, SecondBucket]]:
    """Ascending (second, sealed bucket) sources as one ascending series, each second once: buckets of the same
    second from several sources are added into a new bucket (the sources' own are left as they are)."""
    group: list[SecondBucket] = []
    current = -1
    for second, bucket in heapq.merge(*sources, key=lambda item: item[0]):
        if second != current and group:
            yield current, _combined(group)
            group = []
        current = second
        group.append(bucket)
    if group:
        yield current, _combined(group)


def _combined(group: list[SecondBucket]) -> SecondBucket:
    """One bucket for a second's buckets: the bucket itself when alone, else a new one adding them up."""
    if len(group) == 1:
        return group[0]
    out = SecondBucket()
    for bucket in group:
        out.absorb(bucket)
    return out
