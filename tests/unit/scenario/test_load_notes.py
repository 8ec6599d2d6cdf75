"""`--devices 50` on quickstart adds no load (issue 15 item 9): said before the run, not silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.plan import build_plan
from simulator.scenario.load_notes import idle_devices_note
from simulator.scenario.loader import load_scenario, load_scenario_text

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def test_quickstart_with_more_devices_says_the_operations_stay_20() -> None:
    scenario = load_scenario(SCENARIOS / "quickstart.yaml", {"devices": 50})
    plan = build_plan(scenario)
    assert len(plan.operations) == 20  # what the note claims: the arrivals, not the fleet, set the load
    note = idle_devices_note(scenario)
    assert "50 devices but arrival.count is 20" in note and "the other 30 only connect" in note
    assert "--rate" in note


def test_a_rate_over_the_duration_bounds_it_too() -> None:
    text = (SCENARIOS / "quickstart.yaml").read_text().replace(
        "arrival: {model: constant, rate: 1, count: 20}", "arrival: {model: constant, rate: 1}")
    assert "rate: 1}" in text
    scenario = load_scenario_text(text.replace("devices: 20", "devices: 60"), "q.yaml")
    assert "arrival.rate 1/s over duration 30 s gives about 30" in idle_devices_note(scenario)
    assert idle_devices_note(load_scenario_text(text, "q.yaml")) == ""


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_no_shipped_scenario_needs_the_note(path: Path) -> None:
    assert idle_devices_note(load_scenario(path)) == ""
