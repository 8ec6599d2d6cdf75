"""Burst: `count` operations at once, at `start` seconds.

phase "aligned": every offset is exactly `start` (the synchronized thundering herd the scenario asked for;
the report says so). phase "random": each offset is `start + w * u` with u uniform in [0, 1) from the seeded
generator and w = min(1 s, duration - start), i.e. spread over the second after `start` (docs/protocol.md
section 7: a random phase removes the generator's own batching latency) but never past the run's end.
"""

from __future__ import annotations

import numpy as np

from simulator.arrival.common import Offsets, check_common, finish, format_checks
from simulator.scenario.model import ArrivalSpec

__all__ = ["SPREAD_S", "check", "schedule", "validate"]

SPREAD_S = 1.0  # seconds over which a random-phase burst is spread


def check(spec: ArrivalSpec) -> list[tuple[str, str]]:
    """(field, message) problems; a burst needs `count` >= 1 (it has no rate)."""
    problems = check_common(spec)
    if spec.count < 1 and not any(field == "count" for field, _ in problems):
        problems.append(("count", "the burst model needs count >= 1 (how many operations at once)"))
    return problems


def validate(spec: ArrivalSpec) -> list[str]:
    return format_checks(check(spec))


def schedule(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> Offsets:
    """`count` offsets at `start` (aligned) or spread over [start, start + min(1 s, room left)) (random)."""
    window = duration_s - spec.start
    if window <= 0 or spec.count < 1:
        return np.empty(0, dtype=np.float64)
    if spec.phase == "aligned":
        offsets = np.full(spec.count, float(spec.start), dtype=np.float64)
    else:
        width = min(SPREAD_S, window)
        offsets = spec.start + width * rng.random(spec.count)
        # start + width*u rounds up to duration_s when u is within an ulp of 1: keep it inside the run.
        offsets = np.minimum(offsets, np.nextafter(duration_s, -np.inf))
    return finish(offsets, duration_s, spec.count)
