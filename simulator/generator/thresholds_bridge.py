"""The scenario's thresholds as a callable the finishing step applies to the RunSummary."""

from __future__ import annotations

from collections.abc import Callable

from simulator.metrics.run_summary import RunSummary, ThresholdReport
from simulator.outputs.thresholds import evaluate_thresholds
from simulator.scenario.model import Scenario

__all__ = ["thresholds_report"]


def thresholds_report(scenario: Scenario) -> Callable[[RunSummary], ThresholdReport] | None:
    if not scenario.thresholds:
        return None
    return lambda summary: evaluate_thresholds(summary, scenario.thresholds, scenario.thresholds_on_missing)
