"""What every arrival model shares: the output contract and the checks common to all specs.

Contract of `schedule()` (simulator/arrival/__init__.py): a float64 numpy array of intended offsets, seconds
of wall time from the run's start, sorted ascending, each in [0, duration_s), at most `spec.count` long when
count > 0. Offsets are intended times: the pacer (pacer.py) measures lateness against them.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from simulator.scenario.model import ArrivalSpec

__all__ = ["MAX_ARRIVALS", "Offsets", "check_common", "finish", "format_checks"]

Offsets = npt.NDArray[np.float64]

# The most arrivals one plan may hold: 10 million offsets are 80 MB of float64, beyond any run of this tool
# (thousands of devices, docs/protocol.md section 7); a larger plan is a typo (rate 1e9), reported at validation.
MAX_ARRIVALS = 10_000_000


def check_common(spec: ArrivalSpec) -> list[tuple[str, str]]:
    """(field, message) problems any model has: negative/non-finite start or count, bad phase."""
    problems: list[tuple[str, str]] = []
    if not math.isfinite(spec.start) or spec.start < 0:
        problems.append(("start", f"must be >= 0 s, got {spec.start}"))
    if spec.count < 0:
        problems.append(("count", f"must be >= 0 (0 = no cap), got {spec.count}"))
    elif spec.count > MAX_ARRIVALS:
        problems.append(("count", f"must be <= {MAX_ARRIVALS:,}, got {spec.count:,}"))
    if spec.phase not in ("random", "aligned"):
        problems.append(("phase", f"must be 'random' or 'aligned', got {spec.phase!r}"))
    return problems


def format_checks(problems: list[tuple[str, str]]) -> list[str]:
    """`validate()` messages: "field: message"."""
    return [f"{field}: {message}" for field, message in problems]


def finish(offsets: Offsets, duration_s: float, count: int) -> Offsets:
    """Enforce the contract: sorted, inside [0, duration_s), capped at `count` (when > 0), float64."""
    out = np.sort(np.asarray(offsets, dtype=np.float64))
    out = out[(out >= 0.0) & (out < duration_s)]
    if count > 0:
        out = out[:count]
    return out
