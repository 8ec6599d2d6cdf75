"""k6-style thresholds checked against a finished run's summary.json (issue 7).

`ack_latency_p99_ms: "< 50"` passes when summary["latency_ms"]["ack"]["p99"] < 50. A metric with no value
(e.g. e2e latency without an observer) FAILS its threshold with the reason "no value": a gate must not pass
on missing data. Names and their summary.json locations: simulator.metrics.names.METRICS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.metrics.names import METRICS
from simulator.scenario.thresholds import parse_threshold

__all__ = ["evaluate_thresholds", "metric_value"]


def metric_value(summary: Mapping[str, Any], metric: str) -> float | None:
    spec = METRICS.get(metric)
    if spec is None:
        return None
    node: Any = summary
    for key in spec.path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def evaluate_thresholds(summary: Mapping[str, Any], thresholds: Sequence[tuple[str, str]]) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for metric, expr in thresholds:
        parsed = parse_threshold(expr)
        observed = metric_value(summary, metric)
        if metric not in METRICS:
            ok, reason = False, f"unknown metric (known: {', '.join(sorted(METRICS))})"
        elif parsed is None:
            ok, reason = False, f"cannot parse {expr!r}"
        elif observed is None:
            ok, reason = False, "no value in this run"
        else:
            ok = parsed.holds(observed)
            reason = "" if ok else f"observed {observed:g}, required {expr.strip()}"
        results.append({"metric": metric, "threshold": expr.strip(), "observed": observed, "ok": ok,
                        "reason": reason, "unit": METRICS[metric].unit if metric in METRICS else ""})
    return {"passed": all(r["ok"] for r in results), "results": results}
