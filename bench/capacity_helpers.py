"""Pure helpers of the capacity benchmarks bench/backend_capacity.py (issue 3) and bench/fleet_scale.py (4).

No I/O and no simulator imports: counter interpolation over sampled time series, step windows, the
"which side saturated" verdict, process-tree roles, and parsing of the text the tools print (Prometheus
exposition of the collector, the `fleetsim run` progress line). Tested in tests/unit/bench/.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DRAIN_S",
    "DROP_AFTER_S",
    "GO",
    "READY",
    "SATURATED_CPU_PCT",
    "SUSTAINED_FRACTION",
    "StepEvidence",
    "classify_step",
    "connect_rate",
    "counter_at",
    "metric_value",
    "parse_progress",
    "parse_rates",
    "rate_between",
    "role_of",
    "split_counts",
    "step_windows",
]

# The parent/generator handshake of bench/backend_capacity.py: "READY {json}" on the generator's stdout once
# its devices are connected, "GO <wall time s>" on its stdin: every generator starts its schedule then.
READY, GO = "READY ", "GO "
DRAIN_S = 15.0  # after the last step: acks and arrivals of a backlog settle (or count as lost)
DROP_AFTER_S = 1.0  # an event due longer ago than this is dropped and counted: the generator is behind
# A single-threaded process (mosquitto, amqtt's asyncio loop, the collector's paho thread, one gevent hub)
# at >= 90% of one core is taken as saturated: the last 10% goes to scheduling noise on a shared 2-core box.
SATURATED_CPU_PCT = 90.0
# A step is "sustained" when the collector received >= 97% of the offered rate in its window.
SUSTAINED_FRACTION = 0.97
# Generator lateness past which it is behind its own schedule (docs/design.md principle 6: send lag > 50 ms).
GENERATOR_LAG_MS = 50.0


def parse_rates(text: str) -> list[float]:
    """'500,1000,2k' -> [500.0, 1000.0, 2000.0] (offered OTAEvents/s per step); argparse type."""
    out: list[float] = []
    for part in text.split(","):
        item = part.strip().lower()
        scale = 1000.0 if item.endswith("k") else 1.0
        try:
            value = float(item.rstrip("k")) * scale
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--rates: {part.strip()!r} is not a number (e.g. 500,1000,2k)") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"--rates: {part.strip()!r} must be > 0 events/s")
        out.append(value)
    return out


def split_counts(total: int, parts: int) -> list[int]:
    """`total` devices over `parts` generator processes, sizes differing by at most one, none empty."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def step_windows(t0: float, seconds: Sequence[float], settle_s: float) -> list[tuple[float, float]]:
    """(window start, window end) of each step of a schedule starting at t0: the step minus its first
    `settle_s` seconds, where the previous step's backlog and the new pace are still mixing."""
    out: list[tuple[float, float]] = []
    start = t0
    for length in seconds:
        skip = min(settle_s, length / 2)
        out.append((start + skip, start + length))
        start += length
    return out


def counter_at(samples: Sequence[tuple[float, float]], t: float) -> float | None:
    """A sampled counter's value at time t, linear between the samples around t; None outside the samples.
    `samples` are (time, value) in time order."""
    if not samples or t < samples[0][0] or t > samples[-1][0]:
        return None
    lo, hi = 0, len(samples) - 1
    while hi - lo > 1:  # bisection: the last sample at or before t
        mid = (lo + hi) // 2
        if samples[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t_a, v_a), (t_b, v_b) = samples[lo], samples[hi]
    if t_b == t_a or t <= t_a:
        return v_a
    return v_a + (v_b - v_a) * (t - t_a) / (t_b - t_a)


def rate_between(samples: Sequence[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Mean increase per second of a sampled counter over [t0, t1] (events/s, CPU-s/s, ...)."""
    a, b = counter_at(samples, t0), counter_at(samples, t1)
    if a is None or b is None or t1 <= t0:
        return None
    return (b - a) / (t1 - t0)


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled sample `name` in Prometheus text exposition 0.0.4; None when absent."""
    for line in text.splitlines():
        m = _METRIC.match(line)
        if m and m.group(1) == name and not m.group(2):
            try:
                return float(m.group(3))
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class StepEvidence:
    """What one step measured (rates in events/s over its window, CPU in % of one core)."""

    offered: float
    sent: float
    acked: float
    delivered: float
    broker_cpu: float
    collector_cpu: float
    generator_cpu: tuple[float, ...]
    generator_lag_p99_ms: float
    dropped: int
    machine_cpu: float  # every process of the benchmark together
    cores: int


def classify_step(e: StepEvidence) -> tuple[str, list[str]]:
    """("ok", []) when the collector received >= 97% of the offered rate; otherwise the saturated side(s):
    "broker", "collector", "generator", "machine" (all cores busy), each with the evidence in a reason.
    The broker figure is only the broker's when "broker" is the sole side named."""
    if e.offered > 0 and e.delivered >= SUSTAINED_FRACTION * e.offered:
        return "ok", []
    sides: list[str] = []
    reasons: list[str] = []
    gen_busy = [c for c in e.generator_cpu if c >= SATURATED_CPU_PCT]
    behind = e.sent < SUSTAINED_FRACTION * e.offered or e.generator_lag_p99_ms > GENERATOR_LAG_MS
    if behind or e.dropped or gen_busy:
        sides.append("generator")
        cpus = ", ".join(f"{c:.0f}%" for c in e.generator_cpu)
        reasons.append(f"generator sent {e.sent:.0f}/{e.offered:.0f} ev/s, dropped {e.dropped}, "
                       f"lag p99 {e.generator_lag_p99_ms:.0f} ms, cpu {cpus}")
    if e.broker_cpu >= SATURATED_CPU_PCT or (e.sent > 0 and e.acked < SUSTAINED_FRACTION * e.sent):
        sides.append("broker")
        reasons.append(f"broker cpu {e.broker_cpu:.0f}%, acked {e.acked:.0f} of {e.sent:.0f} sent ev/s")
    if e.collector_cpu >= SATURATED_CPU_PCT or (
        e.acked > 0 and e.delivered < SUSTAINED_FRACTION * e.acked and e.broker_cpu < SATURATED_CPU_PCT
    ):
        sides.append("collector")
        reasons.append(f"collector cpu {e.collector_cpu:.0f}%, delivered {e.delivered:.0f} of "
                       f"{e.acked:.0f} acked ev/s")
    if e.machine_cpu >= SATURATED_CPU_PCT * e.cores:
        sides.append("machine")
        reasons.append(f"all {e.cores} cores busy ({e.machine_cpu:.0f}%)")
    if not sides:
        sides.append("unknown")
        reasons.append("delivered below offered with no side at its CPU limit (I/O or latency bound)")
    return "+".join(sides), reasons


def role_of(name: str, cmdline: Sequence[str]) -> str:
    """Role of a process in a benchmark's tree: "broker" (mosquitto, the amqtt child), "backend" (the
    embedded backend process: pairing, collector) or "generator" (fleetsim run, Locust workers)."""
    joined = " ".join(cmdline)
    if name.startswith("mosquitto") or "simulator.backend.amqtt_main" in joined:
        return "broker"
    if "simulator.backend" in joined:
        return "backend"
    return "generator"


_PROGRESS = re.compile(r"\]\s+devices\s+(\d+)/(\d+)\s+online")


def parse_progress(line: str) -> tuple[int, int] | None:
    """(online, total) from a `fleetsim run` progress line '[   3s] devices 450/1000 online | ...'."""
    m = _PROGRESS.search(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def connect_rate(points: Sequence[tuple[float, int]], total: int) -> dict[str, float | int | None]:
    """Onboarding speed from (time s, devices online) observations in time order: seconds from the first
    observation to the first with every device online, the mean rate over that span, and the fastest rate
    between two consecutive observations (devices/s). `complete` is 0 when the fleet never got all online."""
    if not points:
        return {"seconds": None, "mean_per_s": None, "peak_per_s": None, "online_max": 0, "complete": 0}
    t_first = points[0][0]
    done = next((t for t, n in points if n >= total), None)
    peak = 0.0
    for (t_a, n_a), (t_b, n_b) in itertools.pairwise(points):
        if t_b > t_a:
            peak = max(peak, (n_b - n_a) / (t_b - t_a))
    online_max = max(n for _, n in points)
    span = (done if done is not None else points[-1][0]) - t_first
    mean = online_max / span if span > 0 else None
    return {
        "seconds": round(span, 2),
        "mean_per_s": None if mean is None else round(mean, 1),
        "peak_per_s": round(peak, 1),
        "online_max": online_max,
        "complete": 1 if done is not None else 0,
    }
