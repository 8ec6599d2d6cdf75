"""Ramping arrival rate: the rate moves linearly between stages; arrivals come where its integral is whole.

From `start` (seconds of the run), the rate begins at `start_rate` and each stage moves it linearly to the
stage's `target` (operations/s) over the stage's `duration` (s), as k6's ramping-arrival-rate executor
(lib/executor/ramping_arrival_rate.go). After the last stage no more operations arrive.
The n-th arrival (n = 1, 2, ...) is at the time t where the integral of the rate from `start` reaches n.
Inside a stage starting at rate r0 with slope a = (target - r0) / duration, the integral after tau seconds is
r0*tau + a*tau^2/2; solving for the remaining m operations gives tau = 2m / (r0 + sqrt(r0^2 + 2am)) (the
cancellation-free form of the quadratic root; it is m / r0 when the stage keeps the rate, a = 0).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.arrival.common import MAX_ARRIVALS, Offsets, check_common, finish, format_checks
from simulator.scenario.model import ArrivalSpec

__all__ = ["check", "schedule", "total_arrivals", "validate"]

# Integral values within this of a whole number count as reaching it (float sums of stage areas drift by ulps;
# without it the 10th arrival of a ramp whose area is exactly 10 could be lost at a stage boundary).
_EPS = 1e-9


def check(spec: ArrivalSpec) -> list[tuple[str, str]]:
    """(field, message) problems: at least one stage; durations > 0; rates >= 0 and finite."""
    problems = check_common(spec)
    if not math.isfinite(spec.start_rate) or spec.start_rate < 0:
        problems.append(("start_rate", f"must be >= 0 operations/s, got {spec.start_rate}"))
    if not spec.stages:
        problems.append(("stages", "the ramping model needs at least one stage {duration, target}"))
    for index, stage in enumerate(spec.stages):
        if not math.isfinite(stage.duration) or stage.duration <= 0:
            problems.append((f"stages[{index}].duration", f"must be > 0 s, got {stage.duration}"))
        if not math.isfinite(stage.target) or stage.target < 0:
            problems.append((f"stages[{index}].target", f"must be >= 0 operations/s, got {stage.target}"))
    return problems


def validate(spec: ArrivalSpec) -> list[str]:
    return format_checks(check(spec))


def total_arrivals(spec: ArrivalSpec) -> float:
    """The integral of the rate over all stages: how many operations the ramp offers (before any cap)."""
    total = 0.0
    rate = spec.start_rate
    for stage in spec.stages:
        total += (rate + stage.target) / 2.0 * stage.duration
        rate = stage.target
    return total


def schedule(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> Offsets:
    """Exact inversion of the piecewise-linear rate's integral, stage by stage (`rng` unused)."""
    del rng
    cap = spec.count if spec.count > 0 else MAX_ARRIVALS
    parts: list[Offsets] = []
    done = 0.0  # integral of the rate up to the current stage's beginning
    emitted = 0
    stage_start = float(spec.start)
    r0 = float(spec.start_rate)
    for stage in spec.stages:
        if stage_start >= duration_s or emitted >= cap:
            break
        area = (r0 + stage.target) / 2.0 * stage.duration
        first = math.floor(done + _EPS) + 1  # the first whole number beyond what was already reached
        last = min(math.floor(done + area + _EPS), first - 1 + cap - emitted)
        if last >= first:
            slope = (stage.target - r0) / stage.duration
            m = np.arange(first, last + 1, dtype=np.float64) - done
            root = np.sqrt(np.maximum(r0 * r0 + 2.0 * slope * m, 0.0))
            tau = np.minimum(2.0 * m / (r0 + root), stage.duration)
            parts.append(stage_start + tau)
            emitted += last - first + 1
        done += area
        stage_start += stage.duration
        r0 = stage.target
    offsets = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
    return finish(offsets, duration_s, spec.count)
