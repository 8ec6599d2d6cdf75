"""Poisson arrivals: exponential gaps of mean `1 / rate` seconds drawn from the run's seeded generator.

The first operation arrives one gap after `start`. Gaps are `rng.standard_exponential() / rate`, drawn in
blocks; numpy's Generator fills a block element by element, so block size never changes the values and the
same seed gives the same offsets (docs/design.md principle 9).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.arrival.common import MAX_ARRIVALS, Offsets, check_common, finish, format_checks
from simulator.scenario.model import ArrivalSpec

__all__ = ["check", "schedule", "validate"]


def check(spec: ArrivalSpec) -> list[tuple[str, str]]:
    """(field, message) problems; `rate` is the mean number of operations per second (> 0)."""
    problems = check_common(spec)
    if not math.isfinite(spec.rate) or spec.rate <= 0:
        problems.append(("rate", f"must be > 0 operations/s for the poisson model, got {spec.rate}"))
    return problems


def validate(spec: ArrivalSpec) -> list[str]:
    return format_checks(check(spec))


def schedule(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> Offsets:
    """Arrival times of a Poisson process of intensity `rate` on [start, duration_s)."""
    if duration_s - spec.start <= 0:
        return np.empty(0, dtype=np.float64)
    cap = spec.count if spec.count > 0 else MAX_ARRIVALS
    expected = spec.rate * (duration_s - spec.start)
    block = int(min(max(16.0, expected + 4.0 * math.sqrt(expected) + 16.0), float(cap)))
    parts: list[Offsets] = []
    last = float(spec.start)
    drawn = 0
    while drawn < cap:
        size = min(block, cap - drawn)
        times = last + np.cumsum(rng.standard_exponential(size) / spec.rate)
        parts.append(times)
        drawn += size
        last = float(times[-1])
        if last >= duration_s:
            break
    offsets = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
    return finish(offsets, duration_s, spec.count)
