"""k6-style thresholds checked against a finished run's RunSummary (issue 7, issue 15).

`ack_latency_p99_ms: "< 50"` passes when summary.latency_ms.ack.p99 < 50 (metric names and where they live:
simulator.metrics.metric_table, derived from RunSummary's fields). Each threshold ends `pass`, `fail`, or
`unknown` when its metric has no value in this run, with the reason (e.g. "no observer: delivered/lost
unknown"). An unknown threshold fails the gate only when the scenario says `on_missing: fail`; with the
default `skip` it is reported (terminal, junit.xml as skipped) and does not fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from simulator.metrics.metric_table import METRICS, metric_value
from simulator.metrics.run_summary import RunSummary, ThresholdReport, ThresholdResult
from simulator.scenario.thresholds import parse_threshold

__all__ = ["evaluate_thresholds", "missing_reason"]

# Metrics that only the send/arrival join gives (it needs an observer of what the backend received).
_JOINED = ("events.", "rate.delivered_eps", "latency_ms.e2e")


def missing_reason(summary: RunSummary, metric: str) -> str:
    """Why `metric` has no value in this run."""
    spec = METRICS[metric]
    dotted = ".".join(spec.path)
    if summary.accounting is None and dotted.startswith(_JOINED) and metric != "publish_errors":
        return "no observer: delivered/lost unknown (no collector, AMQP trigger or webhook in the target)"
    if summary.partial:
        return "no value: the run was interrupted before any was measured"
    return "no value in this run (nothing was measured on this path)"


def evaluate_thresholds(summary: RunSummary, thresholds: Sequence[tuple[str, str]],
                        on_missing: Literal["fail", "skip"] = "skip") -> ThresholdReport:
    results: list[ThresholdResult] = []
    for metric, expr in thresholds:
        parsed = parse_threshold(expr)
        expr = expr.strip()
        unit = METRICS[metric].unit if metric in METRICS else ""
        if metric not in METRICS:
            results.append(ThresholdResult(metric, expr, None, False,
                                           f"unknown metric (known: {', '.join(sorted(METRICS))})", unit, "fail"))
            continue
        if parsed is None:
            results.append(ThresholdResult(metric, expr, None, False, f"cannot parse {expr!r}", unit, "fail"))
            continue
        observed = metric_value(summary, metric)
        if observed is None:
            results.append(ThresholdResult(metric, expr, None, on_missing != "fail",
                                           missing_reason(summary, metric), unit, "unknown"))
            continue
        ok = parsed.holds(observed)
        reason = "" if ok else f"observed {observed:g}, required {expr}"
        results.append(ThresholdResult(metric, expr, observed, ok, reason, unit, "pass" if ok else "fail"))
    return ThresholdReport(passed=all(r.ok for r in results), on_missing=on_missing, results=tuple(results))
