"""The scenario's thresholds as a callable the finishing step applies to the summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.outputs.thresholds import evaluate_thresholds
from simulator.scenario.model import Scenario

__all__ = ["thresholds_report"]


def thresholds_report(scenario: Scenario) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    if not scenario.thresholds:
        return None
    return lambda summary: evaluate_thresholds(summary, scenario.thresholds)
