"""Generator health and the run's verdict (docs/design.md principle 6: a run where the generator was the bottleneck
is flagged, not reported as the backend's number), plus the generator/observer clock offset estimate.

Thresholds (HealthThresholds), each with its reason:
  send_lag_p99_ms 50   the generator sends late: a healthy shared I/O path keeps publish->ack p99 at 7-12 ms
                       with 1,000 devices (docs/protocol.md section 7); a send-lag p99 several times that means the
                       schedule slipped and every latency includes the generator's own queueing.
  cpu_pct 90           % of ONE core (gevent runs everything on one core): with < 10% slack, GC passes
                       (~100 ms, docs/protocol.md section 7) and bursts turn straight into latency. Judged on the
                       p90 of the per-interval samples, so a sustained load counts and one GC second does not.
  loop_lag_p99_ms 50   the event loop itself was late to run ready greenlets by more than the send-lag limit.
  sdk_device_limit 300 the sdk transport runs one paho thread per device (~1.1-1.6 ms CPU per QoS 2
                       message) and select() fails past fd 1024 (~338 devices per process, docs/protocol.md
                       sections 6-7); the runner passes `sdk_over_limit` when a process hosts more.
  error_pct 0.1        publish/ack errors above 0.1% of offered events: the backend (or network) refused work.
  incomplete           a run that was not interrupted yet never offered some planned events (devices never
                       came online, the run ended before the plan): its rates are not the plan's load. An
                       interrupted run that offered none of its planned events is incomplete too.
  faults               errors and losses inside an injected fault's window are the scenario's doing
                       (simulator.metrics.fault_attribution): listed in `reasons`, not judged.
  invalid_join         the send log and the arrival log joined into impossible pairs (an arrival before its
                       send, beyond the clock offset measured at the run's fence: simulator.metrics.join_check):
                       the arrivals are not this run's or the clocks disagree, so no count or e2e latency holds.
Verdict priority: invalid_join > generator_saturated > incomplete > lost_events > backend_errors > ok. An
invalid join comes first because it voids every other number, the generator's included; saturation next
because it makes the other numbers the generator's as much as the backend's; every problem is still listed
in `reasons`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from simulator.clock import Clock
from simulator.metrics import names
from simulator.metrics.histograms import LatencyHistogram
from simulator.metrics.run_summary import ClockOffsetSummary

__all__ = [
    "BACKEND_ERRORS",
    "GENERATOR_SATURATED",
    "INCOMPLETE",
    "INVALID_JOIN",
    "LOST_EVENTS",
    "OK",
    "ClockOffset",
    "GeneratorHealth",
    "HealthThresholds",
    "Verdict",
    "clock_offset_estimate",
    "verdict",
]

OK = "ok"
GENERATOR_SATURATED = "generator_saturated"
BACKEND_ERRORS = "backend_errors"
LOST_EVENTS = "lost_events"
INCOMPLETE = "incomplete"
INVALID_JOIN = "invalid_join"


@dataclass(frozen=True)
class HealthThresholds:
    send_lag_p99_ms: float = 50.0
    cpu_pct: float = 90.0
    loop_lag_p99_ms: float = 50.0
    sdk_device_limit: int = 300
    error_pct: float = 0.1


class GeneratorHealth:
    """CPU of this process (sampled by the runner about once a second) and event-loop lag."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.loop_lag = LatencyHistogram(names.PATH_LOOP_LAG)
        # % of one core per interval, as counts per 0.1 % (issue 14: bounded by the values a process can take,
        # ~1,000 for 0-100 %, not by the run's seconds; 0.1 % is far below the 90 % threshold's precision).
        self.cpu_counts: dict[float, int] = {}
        self._last: tuple[float, float] | None = None  # (monotonic s, process cpu s)
        self._process: psutil.Process | None = None

    def record_loop_lag(self, seconds: float) -> None:
        """Pure: the runner's greenlet measures how late its timer fired and reports it here."""
        self.loop_lag.record_s(seconds, "timer_early")

    def record_cpu(self, cpu_seconds: float) -> float | None:
        """Pure: cumulative process CPU time (user+system, s) now; returns % of a core since the last call."""
        now = self.clock.monotonic()
        last, self._last = self._last, (now, cpu_seconds)
        if last is None or now <= last[0]:
            return None
        pct = 100.0 * (cpu_seconds - last[1]) / (now - last[0])
        self.add_cpu_sample(pct)
        return pct

    def add_cpu_sample(self, pct: float, n: int = 1) -> None:
        key = round(pct, 1)
        self.cpu_counts[key] = self.cpu_counts.get(key, 0) + n

    @property
    def cpu_samples(self) -> list[float]:
        """Every interval's % of a core (to 0.1 %), in increasing order."""
        return [pct for pct, n in sorted(self.cpu_counts.items()) for _ in range(n)]

    @property
    def cpu_sample_count(self) -> int:
        return sum(self.cpu_counts.values())

    def sample_cpu(self) -> float | None:
        """Read this process's CPU time with psutil and record it (call from the runner once a second)."""
        if self._process is None:
            self._process = psutil.Process()
        times = self._process.cpu_times()
        return self.record_cpu(float(times.user + times.system))

    def cpu_pct(self) -> float | None:
        """p90 of the per-interval samples (see the module docstring), None before two samples."""
        if not self.cpu_counts:
            return None
        values = np.fromiter(self.cpu_counts, np.float64)
        samples = np.repeat(values, np.fromiter(self.cpu_counts.values(), np.int64))
        return round(float(np.percentile(samples, 90)), 1)

    def export(self) -> dict[str, Any]:
        return {"loop_lag": self.loop_lag.export(), "cpu_counts": [[p, n] for p, n in sorted(self.cpu_counts.items())]}

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add a worker's health. CPU samples are pooled: any saturated worker shows in the p90."""
        self.loop_lag.add(LatencyHistogram.from_export(data["loop_lag"]))
        for pct, n in data.get("cpu_counts", ()):
            self.add_cpu_sample(float(pct), int(n))


@dataclass
class Verdict:
    status: str  # ok | invalid_join | generator_saturated | incomplete | lost_events | backend_errors
    reasons: list[str] = field(default_factory=list)
    saturated: bool = False
    latency_trustworthy: bool = True
    untrusted_reason: str | None = None

    def to_summary(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons), "saturated": self.saturated,
                "latency_trustworthy": self.latency_trustworthy, "untrusted_reason": self.untrusted_reason}


def verdict(*, send_lag_p99_ms: float | None, cpu_pct: float | None, loop_lag_p99_ms: float | None,
            sdk_over_limit: bool = False, errors: int = 0, offered: int = 0, lost: int = 0,
            planned: int = 0, partial: bool = False,
            thresholds: HealthThresholds = HealthThresholds(), fault_errors: int = 0,
            fault_lost: int = 0, invalid_join: str = "") -> Verdict:
    """Judge a run from its numbers (see the module docstring for the thresholds and the priority).

    `fault_errors`/`fault_lost` (of `errors`/`lost`) fell inside injected faults' windows: the scenario caused
    them, so they are listed as such and judged neither as lost events nor as backend errors. `invalid_join`
    (simulator.metrics.join_check.JoinCheck.reason) says why the join is impossible: the verdict is then
    `invalid_join` whatever else happened."""
    t = thresholds
    saturation: list[str] = []
    if send_lag_p99_ms is not None and send_lag_p99_ms > t.send_lag_p99_ms:
        saturation.append(f"send_lag p99 {send_lag_p99_ms:g} ms > {t.send_lag_p99_ms:g} ms")
    if cpu_pct is not None and cpu_pct >= t.cpu_pct:
        saturation.append(f"generator CPU {cpu_pct:g}% >= {t.cpu_pct:g}% of a core")
    if loop_lag_p99_ms is not None and loop_lag_p99_ms > t.loop_lag_p99_ms:
        saturation.append(f"event-loop lag p99 {loop_lag_p99_ms:g} ms > {t.loop_lag_p99_ms:g} ms")
    if sdk_over_limit:
        saturation.append(f"sdk transport past its comfort limit of {t.sdk_device_limit} devices per process")
    reasons = list(saturation)
    # An interrupted run is expected to leave part of its plan unoffered, but one that offered nothing at all
    # measured nothing: never `ok` (e.g. workers that never spawned, then Ctrl-C).
    unoffered = planned - offered if planned > offered and (not partial or offered == 0) else 0
    if unoffered:
        reasons.append(f"{unoffered} of {planned} planned events never offered (devices offline or run ended first)")
    own_lost = max(0, lost - fault_lost)
    own_errors = max(0, errors - fault_errors)
    if own_lost > 0:
        reasons.append(f"{own_lost} events lost" + (" outside injected faults" if fault_lost else ""))
    error_pct = 100.0 * own_errors / offered if offered else 0.0
    backend = own_errors > 0 and error_pct > t.error_pct
    if backend:
        reasons.append(f"{own_errors} publish/ack errors ({error_pct:.3g}% of offered > {t.error_pct:g}%)"
                       + (" outside injected faults" if fault_errors else ""))
    if fault_lost or fault_errors:
        reasons.append(f"injected faults caused {min(fault_lost, lost)} lost events and "
                       f"{min(fault_errors, errors)} publish/ack errors (extra.faults[].caused)")
    if invalid_join:
        reasons.insert(0, invalid_join)
    status = (INVALID_JOIN if invalid_join else GENERATOR_SATURATED if saturation else INCOMPLETE if unoffered
              else LOST_EVENTS if own_lost > 0 else BACKEND_ERRORS if backend else OK)
    out = Verdict(status=status, reasons=reasons, saturated=bool(saturation))
    if invalid_join:
        out.latency_trustworthy = False
        out.untrusted_reason = f"invalid join ({invalid_join}): no e2e latency or delivered/lost count holds"
    elif saturation:
        out.latency_trustworthy = False
        out.untrusted_reason = ("generator saturated (" + "; ".join(saturation)
                                + "): latencies include the generator's own delay, not only the backend's")
    return out


@dataclass(frozen=True)
class ClockOffset:
    """min(arrival - send) over the samples = (observer clock - generator clock) + the smallest one-way delay.

    One-way timing cannot separate the two, so `estimate_s` is an upper bound on the offset. When it is
    negative the observer's clock is certainly behind by at least |estimate_s|, which is what makes e2e
    latencies come out negative (they are clamped to 0 and counted with reason `observer_clock_behind`).
    """

    estimate_s: float
    samples: int

    @property
    def observer_behind(self) -> bool:
        return self.estimate_s < 0

    def to_summary(self) -> ClockOffsetSummary:
        return ClockOffsetSummary(estimate_ms=round(self.estimate_s * 1000, 3), samples=self.samples,
                                  observer_behind=self.observer_behind,
                                  meaning="min(arrival - send): observer minus generator clock, plus the minimum "
                                          "one-way delay")


def clock_offset_estimate(pairs: Iterable[tuple[float, float]]) -> ClockOffset | None:
    """From (send wall s, arrival wall s) pairs of delivered events; None without samples."""
    deltas = np.fromiter((arrival - send for send, arrival in pairs), np.float64)
    if deltas.size == 0:
        return None
    return ClockOffset(estimate_s=float(deltas.min()), samples=int(deltas.size))
