"""Layering: dataclass defaults < YAML < FLEETSIM_* env < CLI flags, re-validated, frozen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simulator.config import OVERRIDE_KEYS, apply_overrides, env_name, flag_name
from simulator.errors import ConfigErrors
from simulator.scenario.loader import load_scenario, load_scenario_text

BASE = load_scenario_text(
    "fleet: {devices: 20}\narrival: {model: constant, rate: 2}\nduration: 30s\n", "b.yaml")


def test_names() -> None:
    assert OVERRIDE_KEYS == ("devices", "rate", "duration", "seed", "transport", "target", "time_scale")
    assert (env_name("time_scale"), flag_name("time_scale")) == ("FLEETSIM_TIME_SCALE", "--time-scale")


def test_no_overrides_is_identity() -> None:
    assert apply_overrides(BASE, {}, {}) == BASE


def test_env_over_yaml_and_cli_over_env() -> None:
    env = {"FLEETSIM_DEVICES": "50", "FLEETSIM_RATE": "4.5", "FLEETSIM_DURATION": "2m", "FLEETSIM_SEED": "9",
           "FLEETSIM_TRANSPORT": "memory", "FLEETSIM_TARGET": "t.yaml", "FLEETSIM_TIME_SCALE": "30",
           "HOME": "/root", "FLEETSIM_OTHER": "ignored"}
    s = apply_overrides(BASE, {}, env)
    assert (s.fleet.devices, s.arrival.rate, s.duration, s.seed) == (50, 4.5, 120.0, 9)
    assert (s.transport, s.target, s.time_scale) == ("memory", "t.yaml", 30.0)
    s = apply_overrides(BASE, {"devices": 7, "duration": "10s", "seed": None, "unrelated": 1}, env)
    assert (s.fleet.devices, s.duration, s.seed) == (7, 10.0, 9)  # None = flag not given: env stays


def test_empty_env_value_counts_as_unset() -> None:
    assert apply_overrides(BASE, {}, {"FLEETSIM_DEVICES": ""}).fleet.devices == 20


def test_result_is_frozen() -> None:
    s = apply_overrides(BASE, {"devices": 3}, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.duration = 1.0  # type: ignore[misc]


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigErrors) as info:
        apply_overrides(BASE, {}, {"FLEETSIM_DEVICES": "many", "FLEETSIM_DURATION": "soon"})
    assert [(e.file, e.field) for e in info.value.errors] == [("FLEETSIM_DEVICES", "fleet.devices"),
                                                              ("FLEETSIM_DURATION", "duration")]
    assert str(info.value.errors[0]) == "FLEETSIM_DEVICES: fleet.devices: expected an integer, got 'many'"


def test_bad_flag_names_the_flag_and_is_revalidated() -> None:
    with pytest.raises(ConfigErrors) as info:
        apply_overrides(BASE, {"devices": 0, "time_scale": "-1", "transport": "carrier-pigeon"}, {})
    assert sorted((e.file, e.field) for e in info.value.errors) == [
        ("--devices", "fleet.devices"), ("--time-scale", "time_scale"), ("--transport", "transport")]


def test_cross_field_problem_blames_the_override() -> None:
    s = load_scenario_text("arrival: {model: constant, rate: 1, start: 20s}\nduration: 30s\n", "b.yaml")
    with pytest.raises(ConfigErrors) as info:
        apply_overrides(s, {"duration": "10s"}, {})
    assert [(e.file, e.field) for e in info.value.errors] == [("--duration", "arrival.start")]


def test_rate_on_a_ramping_scenario_is_refused() -> None:
    s = load_scenario_text("arrival: {model: ramping, stages: [{duration: 5s, target: 1}]}\n", "r.yaml")
    with pytest.raises(ConfigErrors) as info:
        apply_overrides(s, {}, {"FLEETSIM_RATE": "3"})
    assert [(e.file, e.field) for e in info.value.errors] == [("FLEETSIM_RATE", "arrival.rate")]


def test_load_scenario_applies_layers(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("fleet: {devices: 20}\n")
    s = load_scenario(path, overrides={"devices": 5}, env={"FLEETSIM_DEVICES": "8", "FLEETSIM_SEED": "4"})
    assert (s.fleet.devices, s.seed) == (5, 4)
