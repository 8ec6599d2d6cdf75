"""Constant arrival rate: the n-th operation (n = 0, 1, ...) at exactly `start + n / rate` seconds.

Open model and absolute grid, as k6's constant-arrival-rate executor (lib/executor/constant_arrival_rate.go):
the times do not depend on how long earlier operations took (docs/design.md principle 2).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.arrival.common import MAX_ARRIVALS, Offsets, check_common, finish, format_checks
from simulator.scenario.model import ArrivalSpec

__all__ = ["check", "schedule", "validate"]


def check(spec: ArrivalSpec) -> list[tuple[str, str]]:
    """(field, message) problems; `rate` must be a positive finite number of operations per second."""
    problems = check_common(spec)
    if not math.isfinite(spec.rate) or spec.rate <= 0:
        problems.append(("rate", f"must be > 0 operations/s for the constant model, got {spec.rate}"))
    return problems


def validate(spec: ArrivalSpec) -> list[str]:
    return format_checks(check(spec))


def schedule(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> Offsets:
    """Offsets `start + n / rate` below `duration_s` (`rng` unused: the grid is exact)."""
    del rng
    window = duration_s - spec.start
    if window <= 0:
        return np.empty(0, dtype=np.float64)
    # ceil(window * rate) offsets at most; the +1 covers float rounding, finish() trims the excess.
    n = min(math.ceil(window * spec.rate) + 1, MAX_ARRIVALS)
    if spec.count > 0:
        n = min(n, spec.count)
    offsets = spec.start + np.arange(n, dtype=np.float64) / spec.rate
    return finish(offsets, duration_s, spec.count)
