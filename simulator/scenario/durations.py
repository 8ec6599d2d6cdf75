"""Durations as people write them in a scenario: `30s`, `5m`, `250ms`, `1h`, `1m30s`, or a number of seconds.

Shared by the YAML loader and the FLEETSIM_* / CLI overrides (simulator/config.py), so that `--duration 5m`
and `duration: 5m` mean the same thing. Units: ms, s, m, h (Go/k6 style, compound allowed; no sign, no days).
"""

from __future__ import annotations

import math
import re

__all__ = ["DURATION_HINT", "parse_duration"]

DURATION_HINT = "expected a duration like 30s, 5m, 250ms, 1h or a number of seconds"

# Seconds per unit. `ms` must be tried before `m` (the regex alternation order below).
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def parse_duration(value: object) -> float | None:
    """Seconds for `value` (an int/float of seconds or a duration string), or None when it is not one.

    Sign and range are not judged here (a negative number is returned as is, so the caller can say
    "must be > 0" instead of "not a duration"); non-finite numbers and booleans are refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an int beyond float range (1e308 s) is no duration
            return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _NUMBER.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else None
    if not _WHOLE.fullmatch(text):
        return None
    total = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))
    return total if math.isfinite(total) else None
