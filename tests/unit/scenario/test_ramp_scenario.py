"""`fleet.ramp` in a scenario: read into DeviceStage, and every bad stage refused with file:line."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from simulator.errors import ConfigErrors
from simulator.scenario.checks import check_scenario
from simulator.scenario.loader import load_scenario_text
from simulator.scenario.model import DeviceStage

HEAD = """\
name: ramped
fleet:
  devices: 20
  ramp:
"""


def errors(stages: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_scenario_text(HEAD + textwrap.indent(textwrap.dedent(stages), "    "), "r.yaml")
    return [str(e) for e in info.value.errors]


def test_ramp_is_read_with_durations_and_counts() -> None:
    sc = load_scenario_text(HEAD + "    - {duration: 30s, devices: 10}\n    - {duration: 1m, devices: 20}\n")
    assert sc.fleet.ramp == (DeviceStage(duration=30.0, devices=10), DeviceStage(duration=60.0, devices=20))


def test_no_ramp_is_empty() -> None:
    assert load_scenario_text("name: plain\nfleet: {devices: 3}\n").fleet.ramp == ()


def test_unknown_key_gets_a_suggestion_at_its_line() -> None:
    assert errors("""\
        - {duration: 4s, devices: 10}
        - {duration: 4s, devics: 20}
        """) == ["r.yaml:6: fleet.ramp[1].devics: unknown key 'devics'; did you mean 'devices'?",
                 "r.yaml:6: fleet.ramp[1].devices: missing (required)"]


def test_wrong_types_are_refused_at_their_line() -> None:
    assert errors("""\
        - {duration: soon, devices: 10}
        - {duration: 4s, devices: 1.5}
        """) == ["r.yaml:5: fleet.ramp[0].duration: expected a duration like 30s, 5m, 250ms, 1h or a number "
                 "of seconds, got 'soon'",
                 "r.yaml:6: fleet.ramp[1].devices: expected an integer, got a number"]


def test_impossible_values_are_refused_at_their_line() -> None:
    assert errors("""\
        - {duration: 0s, devices: 10}
        - {duration: 4s, devices: 21}
        - {duration: 4s, devices: -1}
        - {duration: 4s, devices: 15}
        - {duration: 4s, devices: 12}
        """) == ["r.yaml:5: fleet.ramp[0].duration: must be > 0 s, got 0.0",
                 "r.yaml:6: fleet.ramp[1].devices: must be between 0 and fleet.devices (20), got 21",
                 "r.yaml:7: fleet.ramp[2].devices: must be between 0 and fleet.devices (20), got -1",
                 "r.yaml:9: fleet.ramp[4].devices: must not go down (the previous stage reaches 15), got 12"]


def test_ramp_must_be_a_list() -> None:
    with pytest.raises(ConfigErrors) as info:
        load_scenario_text("name: r\nfleet:\n  devices: 2\n  ramp: {duration: 1s, devices: 2}\n", "r.yaml")
    assert [str(e) for e in info.value.errors] == ["r.yaml:4: fleet.ramp: expected a list, got a mapping"]


def test_override_below_the_ramp_is_caught_by_the_checks() -> None:
    sc = load_scenario_text(HEAD + "    - {duration: 4s, devices: 20}\n")
    smaller = replace(sc, fleet=replace(sc.fleet, devices=10))
    assert ("fleet.ramp[0].devices", "must be between 0 and fleet.devices (10), got 20") in check_scenario(smaller)
