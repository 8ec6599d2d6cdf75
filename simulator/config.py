"""Layered settings: dataclass defaults < scenario YAML < FLEETSIM_* environment < command-line flags.

Only the run flags below can be layered over a scenario; each has an env variable (FLEETSIM_ + the key
in upper case) and a flag (`--` + the key with `-` for `_`). The environment is passed in as a mapping
(never read from os.environ here) so tests and callers decide what it holds. A bad value is a ConfigError
whose "file" is the env variable or the flag; the layered scenario is checked again, as the file was, and
returned frozen.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

from simulator.errors import ConfigError, ConfigErrors
from simulator.scenario.checks import check_scenario
from simulator.scenario.durations import DURATION_HINT, parse_duration
from simulator.scenario.model import Scenario
from simulator.scenario.nodes import with_changes

__all__ = ["ENV_PREFIX", "OVERRIDE_FIELDS", "OVERRIDE_KEYS", "apply_overrides", "env_name", "flag_name"]

ENV_PREFIX = "FLEETSIM_"
# Override key -> the dotted Scenario field it sets (the same names the loader's errors use).
OVERRIDE_FIELDS: dict[str, str] = {
    "devices": "fleet.devices",
    "rate": "arrival.rate",
    "duration": "duration",
    "seed": "seed",
    "transport": "transport",
    "target": "target",
    "time_scale": "time_scale",
}
OVERRIDE_KEYS = tuple(OVERRIDE_FIELDS)


def env_name(key: str) -> str:
    """FLEETSIM_DEVICES for "devices"."""
    return ENV_PREFIX + key.upper()


def flag_name(key: str) -> str:
    """--time-scale for "time_scale"."""
    return "--" + key.replace("_", "-")


def _integer(value: object) -> int | str:
    if isinstance(value, bool):
        return "expected an integer"
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""), 10)
        except ValueError:
            pass
    return f"expected an integer, got {value!r}"


def _number(value: object) -> float | str:
    if isinstance(value, bool):
        return "expected a number"
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except (ValueError, OverflowError):
        number = math.nan
    return number if math.isfinite(number) else f"expected a finite number, got {value!r}"


def _duration(value: object) -> float | str:
    seconds = parse_duration(value)
    return f"{DURATION_HINT}, got {value!r}" if seconds is None else seconds


def _text(value: object) -> str:
    return str(value).strip()


_PARSERS: dict[str, Callable[[object], object]] = {
    "devices": _integer,
    "rate": _number,
    "duration": _duration,
    "seed": _integer,
    "transport": _text,
    "target": _text,
    "time_scale": _number,
}


def _set(scenario: Scenario, key: str, value: object) -> Scenario:
    """`scenario` with one override applied (types judged afterwards by check_scenario)."""
    if key == "devices":
        return dataclasses.replace(scenario, fleet=with_changes(scenario.fleet, {"devices": value}))
    if key == "rate":
        return dataclasses.replace(scenario, arrival=with_changes(scenario.arrival, {"rate": value}))
    return with_changes(scenario, {key: value})


def _related(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))


def apply_overrides(scenario: Scenario, cli: Mapping[str, object], env: Mapping[str, str]) -> Scenario:
    """`scenario` with FLEETSIM_* values from `env`, then non-None `cli` values (keys: OVERRIDE_KEYS), on top.

    Other keys of `cli` and other variables of `env` are ignored, so `vars(args)` and a whole environment can
    be passed. An empty env variable counts as unset. Raises ConfigErrors naming the variable or flag.
    """
    errors: list[ConfigError] = []
    origin: dict[str, str] = {}
    result = scenario
    for key in OVERRIDE_KEYS:
        layers = [(env_name(key), env.get(env_name(key))), (flag_name(key), cli.get(key))]
        for name, raw in layers:
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                continue
            value = _PARSERS[key](raw)
            if isinstance(value, str) and key not in ("transport", "target"):
                errors.append(ConfigError(name, 0, OVERRIDE_FIELDS[key], value))
                continue
            result = _set(result, key, value)
            origin[key] = name
    if "rate" in origin and result.arrival.model not in ("constant", "poisson"):
        message = f"applies to constant and poisson arrivals; this scenario's is {result.arrival.model!r}"
        errors.append(ConfigError(origin["rate"], 0, "arrival.rate", message))
    if errors:
        raise ConfigErrors(errors)
    before = set(check_scenario(scenario))  # a loaded scenario has none; a hand-built one might
    for field, message in check_scenario(result):
        culprit = next((name for key, name in origin.items() if _related(field, OVERRIDE_FIELDS[key])), None)
        if culprit is None and (field, message) not in before and origin:
            culprit = ", ".join(origin.values())  # a cross-field problem (e.g. arrival.start vs --duration)
        errors.append(ConfigError(culprit or scenario.source or "<scenario>", 0, field, message))
    if errors:
        raise ConfigErrors(errors)
    return result
