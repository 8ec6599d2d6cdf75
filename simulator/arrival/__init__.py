"""Arrival models: when OTA operations start, as intended offsets from the run's start (open model).

`schedule(spec, duration_s, rng)` is THE contract the planner uses: a sorted float64 array of offsets in
seconds, each in [0, duration_s), at most `spec.count` when count > 0. One module per model (docs/design.md
principle 2): burst.py, constant.py, poisson.py, ramping.py; pacer.py turns offsets into waits.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from simulator.arrival import burst, constant, poisson, ramping
from simulator.arrival.common import MAX_ARRIVALS, Offsets
from simulator.scenario.model import ArrivalSpec

__all__ = ["MAX_ARRIVALS", "MODELS", "Offsets", "check", "expected_arrivals", "schedule", "validate"]

MODELS: dict[str, ModuleType] = {
    "burst": burst,
    "constant": constant,
    "poisson": poisson,
    "ramping": ramping,
}


def check(spec: ArrivalSpec) -> list[tuple[str, str]]:
    """(field, message) problems of `spec`, fields relative to the `arrival` section."""
    module = MODELS.get(spec.model)
    if module is None:
        return [("model", f"unknown arrival model {spec.model!r}; choose from {', '.join(sorted(MODELS))}")]
    problems: list[tuple[str, str]] = module.check(spec)
    return problems


def validate(spec: ArrivalSpec) -> list[str]:
    """Messages "field: problem" (empty when `spec` is valid)."""
    return [f"{field}: {message}" for field, message in check(spec)]


def expected_arrivals(spec: ArrivalSpec, duration_s: float) -> float:
    """About how many operations `spec` plans in `duration_s` (mean for poisson), for sanity limits."""
    window = max(0.0, duration_s - spec.start)
    if spec.model == "burst":
        offered = float(spec.count)
    elif spec.model == "ramping":
        offered = ramping.total_arrivals(spec)
    else:
        offered = spec.rate * window
    return min(offered, float(spec.count)) if spec.count > 0 else offered


def schedule(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> Offsets:
    """Intended offsets of every operation of the run; raises ValueError on a spec `check` refuses."""
    problems = check(spec)
    if problems:
        raise ValueError("invalid arrival spec: " + "; ".join(f"{f}: {m}" for f, m in problems))
    result: Offsets = MODELS[spec.model].schedule(spec, duration_s, rng)
    return result
