"""Threshold expressions, k6 style: `metric: "< 50"` (k6 thresholds; issue 7).

Syntax only: an operator (<, <=, >, >=, ==, !=) then a number, optionally followed by `%`. The metric names
are defined by the metrics layer (metrics/names.py); here a name is only checked to be `[a-z_.0-9]+`.
In YAML, quote the expression: an unquoted `>` starts a folded block scalar.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["METRIC_NAME", "Threshold", "parse_threshold", "threshold_error"]

METRIC_NAME = re.compile(r"[a-z_.0-9]+")
_EXPR = re.compile(r"\s*(<=|>=|==|!=|<|>)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(%?)\s*")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold: `op value` (value in the metric's own unit, or percent when `percent`)."""

    op: str
    value: float
    percent: bool = False

    def holds(self, observed: float) -> bool:
        """True when `observed` (same unit as `value`; a percentage when `percent`) passes the threshold."""
        return _OPS[self.op](observed, self.value)

    def __str__(self) -> str:
        number = f"{self.value:g}"
        return f"{self.op} {number}{'%' if self.percent else ''}"


def parse_threshold(expr: str) -> Threshold | None:
    """The Threshold written in `expr` (e.g. `"<= 0.5%"`), or None when the syntax is wrong."""
    match = _EXPR.fullmatch(expr)
    if match is None:
        return None
    value = float(match.group(2))
    if not math.isfinite(value):
        return None
    return Threshold(match.group(1), value, match.group(3) == "%")


def threshold_error(metric: str, expr: str) -> str | None:
    """A message saying what is wrong with `metric: expr`, or None when both are well formed."""
    if not METRIC_NAME.fullmatch(metric):
        return f"metric name {metric!r} must match [a-z_.0-9]+"
    if parse_threshold(expr) is None:
        return f"threshold {expr!r} must be an operator (<, <=, >, >=, ==, !=) then a number, e.g. \"< 50\""
    return None
