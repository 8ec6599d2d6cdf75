"""The sealed seconds one Locust worker shipped with its periodic reports, on the master (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from simulator.metrics.second_bucket import SecondBucket, move_seconds
from simulator.metrics.second_spool import SecondSpool

__all__ = ["SecondsInbox"]


class SecondsInbox:
    """One worker's shipped seconds, merged as they come, in that worker's own seconds (second 0 = its `start`,
    wall s), kept in a spool: the last `hold` seconds in memory, older ones on disk, so the master's memory does
    not grow with the run's length. Read at the end (`items`, or `move_into`) by the same whole-second shift as
    that worker's final message's seconds."""

    __slots__ = ("spool", "start")

    def __init__(self, start: float, spool: SecondSpool | None = None) -> None:
        self.start = start
        self.spool = SecondSpool() if spool is None else spool

    @property
    def newest(self) -> int:
        """The newest second shipped, in this worker's frame (-1: none)."""
        return self.spool.newest

    def add(self, shipped: Mapping[str, Any]) -> None:
        """One report's {"start", "seconds"} (MetricsRecorder.take_sealed / OnlineJoin.take_sealed)."""
        self.spool.add_shipped(shipped["seconds"], round(float(shipped["start"]) - self.start))

    def items(self, shift: int = 0) -> Iterator[tuple[int, SecondBucket]]:
        """Every second, ascending, moved by `shift` (clamped at 0; clamped ones merged into second 0)."""
        if shift >= 0:
            for second, bucket in self.spool.items():
                yield second + shift, bucket
            return
        head = SecondBucket()
        head_seen = False
        for second, bucket in self.spool.items():
            moved = second + shift
            if moved <= 0:
                head.absorb(bucket)
                head_seen = True
                continue
            if head_seen:
                yield 0, head
                head_seen = False
            yield moved, bucket
        if head_seen:
            yield 0, head

    def move_into(self, into: MutableMapping[int, SecondBucket], start: float) -> int:
        """Add every second into `into` (whose second 0 is `start`), emptying this inbox; the newest second
        touched (-1: none). Reads the whole spool back: for a caller that needs a dict of seconds."""
        newest = move_seconds(into, dict(self.spool.items()), round(self.start - start))
        self.spool.close()
        self.spool = SecondSpool(self.spool.hold)
        return newest
