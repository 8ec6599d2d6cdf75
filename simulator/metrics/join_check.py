"""Is the join of the send log and the arrival log possible at all? (issue 14: `invalid_join`)

An event cannot reach the observer before it left the device. With the observer's clock measured against the
generator's at the run's mark (simulator.observers.fence: offset known to +- uncertainty), a joined pair with
`arrival - sent` below `offset - uncertainty - JOIN_SLACK_S` is impossible: the arrival is not this send's (an
earlier run's arrival log, a key collision) or the clocks are not what was measured (a host clock stepped
mid-run, an unsynchronised worker host). Either way every e2e latency and every delivered/lost count of the
run is suspect, so the verdict is `invalid_join` (metrics/health.py), never `ok` nor a generator verdict.

JOIN_SLACK_S = 5 ms covers what the mark cannot measure: wall-clock reads across processes on one host agree
to microseconds, an NTP slew moves a clock by at most 0.5 ms per second, and hosts kept by NTP on one network
agree to about a millisecond. A clock error beyond that is itself worth an invalid verdict: e2e latencies of a
few ms would be fiction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simulator.events import EventKey

__all__ = ["JOIN_SLACK_S", "JoinCheck", "JoinChecker", "check_join"]

JOIN_SLACK_S = 0.005
_EXAMPLES = 5


@dataclass(frozen=True)
class JoinCheck:
    """The verdict's input: how many joined pairs were impossible, and by how much at worst."""

    pairs: int = 0
    impossible: int = 0
    worst_s: float | None = None  # the most negative (arrival - sent - offset) among the impossible pairs
    offset_s: float = 0.0
    allowance_s: float = JOIN_SLACK_S  # uncertainty + slack: how far below the offset a pair may go
    examples: tuple[EventKey, ...] = ()

    @property
    def invalid(self) -> bool:
        return self.impossible > 0

    def reason(self) -> str:
        if not self.invalid:
            return ""
        worst = f"{self.worst_s * 1000:.1f} ms" if self.worst_s is not None else "?"
        return (f"{self.impossible} of {self.pairs} joined events arrived before they were sent (worst {worst}, "
                f"beyond the measured clock offset {self.offset_s * 1000:+.1f} ms +- "
                f"{self.allowance_s * 1000:.1f} ms): the arrivals are not this run's, or the clocks disagree")


class JoinChecker:
    """check_join fed one joined pair at a time (the online join: no pair is kept, only the counts, the worst
    and a few examples); `offset_s`/`uncertainty_s` come from the run's fence, taken before the first send."""

    def __init__(self, offset_s: float = 0.0, uncertainty_s: float = 0.0, slack_s: float = JOIN_SLACK_S) -> None:
        self.offset_s = offset_s
        self.allowance_s = max(0.0, uncertainty_s) + slack_s
        self.pairs = self.impossible = 0
        self.worst_s: float | None = None
        self.examples: list[EventKey] = []

    def add(self, key: EventKey, sent: float, arrival: float) -> None:
        self.pairs += 1
        delay = arrival - sent - self.offset_s
        if delay < -self.allowance_s:
            self.impossible += 1
            self.worst_s = delay if self.worst_s is None else min(self.worst_s, delay)
            if len(self.examples) < _EXAMPLES:
                self.examples.append(key)

    def result(self) -> JoinCheck:
        return JoinCheck(pairs=self.pairs, impossible=self.impossible, worst_s=self.worst_s, offset_s=self.offset_s,
                         allowance_s=self.allowance_s, examples=tuple(self.examples))


def check_join(pairs: Iterable[tuple[EventKey, float, float]], offset_s: float = 0.0,
               uncertainty_s: float = 0.0, slack_s: float = JOIN_SLACK_S) -> JoinCheck:
    """`pairs`: (key, sent wall s, first arrival wall s) of every joined event; `offset_s`: observer clock minus
    generator clock as measured at the mark, known to +- `uncertainty_s`."""
    checker = JoinChecker(offset_s, uncertainty_s, slack_s)
    for key, sent, arrival in pairs:
        checker.add(key, sent, arrival)
    return checker.result()
