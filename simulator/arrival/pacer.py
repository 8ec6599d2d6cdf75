"""The absolute-schedule pacer: every wait is computed from the run's start, never from the previous send.

docs/design.md principle 3. Sleeping a fixed interval *after* each send lets every delay accumulate (the send
drifts later and later, and the offered rate silently drops); emqtt-bench's `schedule_next_publish` and k6's
arrival-rate executors instead aim each operation at `start + offset`. When the generator falls behind, the
lateness is counted (send lag), and an operation more than `max_lag_s` late is dropped and counted, as k6's
`dropped_iterations`, rather than sent in a catch-up burst that would measure the generator, not the backend.

Use:
    wait = pacer.wait_time(offset)       # sleep this long (0 when already due)
    if pacer.should_drop(offset): skip   # too late: counted as dropped
    send(); pacer.record(offset, clock.monotonic())
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.clock import Clock

__all__ = ["DEFAULT_LATE_AFTER_S", "Pacer", "PacerStats"]

# A send later than this counts as "late". 1 ms: gevent/libev timer granularity is about a millisecond, and
# the phase-aligned grid measured ~1.1 ms publish latency (docs/protocol.md section 7), so smaller lags are noise.
DEFAULT_LATE_AFTER_S = 0.001


@dataclass(frozen=True)
class PacerStats:
    """Counters of one pacer. Lags in seconds; `sent` counts record() calls, `dropped` should_drop() hits."""

    sent: int = 0
    late: int = 0  # sends whose lag exceeded late_after_s
    dropped: int = 0
    max_lag_s: float = 0.0
    lag_sum_s: float = 0.0

    @property
    def mean_lag_s(self) -> float:
        return self.lag_sum_s / self.sent if self.sent else 0.0


class Pacer:
    """Paces operations at `start_monotonic + offset_s` on `clock` (seconds; offsets: arrival.schedule)."""

    __slots__ = ("_clock", "_dropped", "_lag_sum", "_late", "_late_after", "_max_lag", "_sent", "_start",
                 "max_lag_s")

    def __init__(
        self,
        clock: Clock,
        start_monotonic: float,
        max_lag_s: float = 1.0,
        late_after_s: float = DEFAULT_LATE_AFTER_S,
    ) -> None:
        if not math.isfinite(max_lag_s) or max_lag_s < 0:
            raise ValueError(f"max_lag_s must be a finite number >= 0, got {max_lag_s}")
        if not math.isfinite(late_after_s) or late_after_s < 0:
            raise ValueError(f"late_after_s must be a finite number >= 0, got {late_after_s}")
        self._clock = clock
        self._start = float(start_monotonic)
        self.max_lag_s = float(max_lag_s)
        self._late_after = float(late_after_s)
        self._sent = 0
        self._late = 0
        self._dropped = 0
        self._max_lag = 0.0
        self._lag_sum = 0.0

    def intended(self, offset_s: float) -> float:
        """The monotonic time at which the operation at `offset_s` is due."""
        return self._start + offset_s

    def wait_time(self, offset_s: float) -> float:
        """Seconds to wait until the operation at `offset_s` is due; 0 when it already is (never negative)."""
        return max(0.0, self.intended(offset_s) - self._clock.monotonic())

    def lag(self, offset_s: float) -> float:
        """How late, in seconds, a send now would be (0 when early or on time)."""
        return max(0.0, self._clock.monotonic() - self.intended(offset_s))

    def should_drop(self, offset_s: float) -> bool:
        """True (and counted as dropped) when sending now would be more than max_lag_s late."""
        if self.lag(offset_s) > self.max_lag_s:
            self._dropped += 1
            return True
        return False

    def record(self, offset_s: float, actual_monotonic: float) -> float:
        """Count a send of the operation at `offset_s` made at `actual_monotonic`; return its lag (s)."""
        lag = max(0.0, actual_monotonic - self.intended(offset_s))
        self._sent += 1
        self._lag_sum += lag
        if lag > self._max_lag:
            self._max_lag = lag
        if lag > self._late_after:
            self._late += 1
        return lag

    @property
    def stats(self) -> PacerStats:
        return PacerStats(self._sent, self._late, self._dropped, self._max_lag, self._lag_sum)
