"""The threshold/compare metrics, derived from RunSummary's fields (one table, nothing hand-kept).

A field of simulator.metrics.run_summary whose metadata carries `metric(...)` is a metric; a field with
`sub_metrics(...)` holds several (the percentiles of a latency path). `METRICS` maps each name to the
attribute path from the RunSummary root, its unit and its direction; `metric_value(summary, name)` reads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_type_hints

from simulator.metrics.run_summary import METRIC, SUB_METRICS, MetricInfo, RunSummary

__all__ = ["METRICS", "MetricSpec", "metric_value"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Where a metric lives in a RunSummary (attribute names; a Mapping step is a key), unit, direction."""

    path: tuple[str, ...]
    unit: str
    lower_is_better: bool


def _walk(cls: type, prefix: tuple[str, ...], out: dict[str, MetricSpec]) -> None:
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        info = f.metadata.get(METRIC)
        if isinstance(info, MetricInfo):
            out[info.name] = MetricSpec(path, info.unit, info.lower_is_better)
        subs = f.metadata.get(SUB_METRICS)
        if isinstance(subs, Mapping):
            for sub_path, sub in subs.items():
                out[sub.name] = MetricSpec((*path, *sub_path), sub.unit, sub.lower_is_better)
        hint = hints[f.name]
        # Nested summary sections (Optional ones too) may hold metrics of their own.
        for candidate in getattr(hint, "__args__", (hint,)):
            if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
                _walk(candidate, path, out)


def _table() -> dict[str, MetricSpec]:
    out: dict[str, MetricSpec] = {}
    _walk(RunSummary, (), out)
    return out


METRICS: dict[str, MetricSpec] = _table()


def metric_value(summary: RunSummary, name: str) -> float | None:
    """The metric's value in this run, or None (unknown metric, or no value: e.g. lost without an observer)."""
    spec = METRICS.get(name)
    if spec is None:
        return None
    node: object = summary
    for step in spec.path:
        if node is None:
            return None
        node = node.get(step) if isinstance(node, Mapping) else getattr(node, step, None)
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)
