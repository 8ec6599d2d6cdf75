"""Scenario YAML -> a frozen, validated Scenario, or ConfigErrors listing EVERY problem with file:line.

The YAML is composed to nodes (not loaded) so each key keeps its line; reading collects type errors and
unknown keys (with a "did you mean" suggestion); then checks.py judges the values; then scripted lifecycles go
through the lifecycle machine's script check. Nothing raises but ConfigErrors, whatever the input.

Shape (every key optional; durations `30s`, `5m`, `250ms`, `1h`, `1m30s` or a number of seconds):

    name: quickstart            # default: the file's stem
    description: "..."          # free text (kept in Scenario.extra); so are top-level `x-...` keys
    realm: fleetsim             # an Astarte realm name
    seed: 42                    # >= 0; same seed + same scenario => same plan
    fleet: {devices: 20, id_scheme: random|sequential, id_prefix: "",
            base_image: {name, version, build_id, fingerprint}, target_version: "1.1.0",
            ramp: [{duration: 30s, devices: 200}, {duration: 1m, devices: 1000}]}   # devices online
    time_scale: 60              # device seconds per wall second
    duration: 30s               # wall time of the run
    graceful_stop: 30s          # operations in flight at `duration` may finish this long; the rest is cut
    transport: lean|sdk|memory
    target: embedded            # or the path of a target file (a real Astarte)
    mode: self|responder|campaign   # responder: answer OTARequests from any sender; campaign: and drive one
    arrival: {model: burst|constant|poisson|ramping, rate: 2, count: 0, start: 0s, start_rate: 0,
              stages: [{duration: 10s, target: 5}], phase: random|aligned}
    lifecycle: {random: {...}} | {scripted: {...}} | {mix: [{weight, name, random|scripted}]}
                                # lifecycle_reader.py gives the shapes
    thresholds: {ack_latency_p99_ms: "< 50", lost: "== 0"}   # quote them: a bare `>` is YAML syntax
    # `on_missing: fail | skip` among them: what a threshold whose metric has no value does (default skip)
    faults: [{kind: disconnect, at: 10s, duration: 5s, devices: 0.1, params: {delay_ms: 50}}]
    campaign: {max_in_progress: 10, request_timeout: 300s, request_retries: 3, max_failure_percentage: 50,
               url: "https://..."}     # mode: campaign only; device-time seconds (model.CampaignSettings);
                                       # "{images}/os.raucb?size=10MiB": the embedded backend's image server
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.nodes import Node, ScalarNode

from simulator.config import apply_overrides
from simulator.errors import ConfigError, ConfigErrors
from simulator.scenario.checks import check_scenario
from simulator.scenario.lifecycle_reader import read_lifecycle
from simulator.scenario.model import (
    ArrivalSpec,
    BaseImageSpec,
    CampaignSettings,
    DeviceStage,
    FaultSpec,
    FleetSpec,
    RampStage,
    Scenario,
)
from simulator.scenario.nodes import NodeReader, with_changes

__all__ = ["TOP_KEYS", "load_scenario", "load_scenario_text"]

TOP_KEYS = ("name", "description", "realm", "seed", "fleet", "time_scale", "duration", "graceful_stop",
            "transport", "target", "mode", "arrival", "lifecycle", "thresholds", "faults", "campaign")
_FLEET_KEYS = ("devices", "id_scheme", "id_prefix", "base_image", "target_version", "ramp")
_IMAGE_KEYS = ("name", "version", "build_id", "fingerprint")
_ARRIVAL_KEYS = ("model", "rate", "count", "start", "start_rate", "stages", "phase")
_FAULT_KEYS = ("kind", "at", "duration", "devices", "params")
_CAMPAIGN_KEYS = ("max_in_progress", "request_timeout", "request_retries", "max_failure_percentage", "url")

Reader = Callable[[Node, str], object]


def _read(
    r: NodeReader, keys: Mapping[str, Node], field: str, readers: Mapping[str, Reader]
) -> dict[str, object]:
    """Values of the keys that have a reader and read well, for dataclasses.replace."""
    out: dict[str, object] = {}
    for key, reader in readers.items():
        if key in keys:
            value = reader(keys[key], f"{field}.{key}" if field else key)
            if value is not None:
                out[key] = value
    return out


def _fleet(r: NodeReader, node: Node) -> FleetSpec | None:
    keys = r.mapping(node, "fleet", _FLEET_KEYS)
    if keys is None:
        return None
    fleet = with_changes(FleetSpec(), _read(r, keys, "fleet", {
        "devices": r.integer, "id_scheme": r.text, "id_prefix": r.text, "target_version": r.text}))
    if "base_image" in keys:
        image_keys = r.mapping(keys["base_image"], "fleet.base_image", _IMAGE_KEYS)
        if image_keys is not None:
            image = _read(r, image_keys, "fleet.base_image", dict.fromkeys(_IMAGE_KEYS, r.text))
            fleet = dataclasses.replace(fleet, base_image=with_changes(BaseImageSpec(), image))
    if "ramp" in keys:
        ramp = _ramp(r, keys["ramp"], "fleet.ramp")
        if ramp is not None:
            fleet = dataclasses.replace(fleet, ramp=ramp)
    return fleet


V = TypeVar("V")  # a stage's value (devices: int, target: float)
S = TypeVar("S")  # a stage


def _ramp(r: NodeReader, node: Node, field: str) -> tuple[DeviceStage, ...] | None:
    """fleet.ramp: [{duration, devices}, ...]; values judged by checks.py (> 0 s, 0..fleet.devices)."""
    return _stage_list(r, node, field, "devices", r.integer, lambda d, n: DeviceStage(duration=d, devices=n))


def _stages(r: NodeReader, node: Node, field: str) -> tuple[RampStage, ...] | None:
    """arrival.stages: [{duration, target}, ...] (ramping arrival rate)."""
    return _stage_list(r, node, field, "target", r.number, lambda d, x: RampStage(duration=d, target=x))


def _stage_list(r: NodeReader, node: Node, field: str, value_key: str, read_value: Callable[[Node, str], V | None],
                make: Callable[[float, V], S]) -> tuple[S, ...] | None:
    """A k6-style list of stages, each {duration, <value_key>}; None (problems reported) unless all are good."""
    items = r.sequence(node, field)
    if items is None:
        return None
    allowed = ("duration", value_key)
    stages: list[S] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        keys = r.mapping(item, where, allowed)
        if keys is None or not r.require(item, keys, where, allowed):
            continue
        duration = r.duration(keys["duration"], f"{where}.duration")
        value = read_value(keys[value_key], f"{where}.{value_key}")
        if duration is not None and value is not None:
            stages.append(make(duration, value))
    return tuple(stages) if len(stages) == len(items) else None


def _arrival(r: NodeReader, node: Node) -> ArrivalSpec | None:
    keys = r.mapping(node, "arrival", _ARRIVAL_KEYS)
    if keys is None:
        return None
    return with_changes(ArrivalSpec(), _read(r, keys, "arrival", {
        "model": r.text, "rate": r.number, "count": r.integer, "start": r.duration, "start_rate": r.number,
        "stages": lambda n, f: _stages(r, n, f), "phase": r.text}))


ON_MISSING = "on_missing"


def _thresholds(r: NodeReader, node: Node) -> tuple[tuple[str, str], ...] | None:
    keys = r.mapping_any(node, "thresholds")
    if keys is None:
        return None
    pairs = [(metric, r.text(value, f"thresholds.{metric}")) for metric, value in keys.items()]
    return tuple((metric, expr.strip()) for metric, expr in pairs if expr is not None)


def _params(r: NodeReader, node: Node, field: str) -> tuple[tuple[str, str], ...] | None:
    keys = r.mapping_any(node, field)
    if keys is None:
        return None
    pairs = [(name, r.text(value, f"{field}.{name}")) for name, value in keys.items()]
    return tuple((name, text) for name, text in pairs if text is not None)


def _faults(r: NodeReader, node: Node) -> tuple[FaultSpec, ...] | None:
    items = r.sequence(node, "faults")
    if items is None:
        return None
    faults: list[FaultSpec] = []
    for index, item in enumerate(items):
        where = f"faults[{index}]"
        keys = r.mapping(item, where, _FAULT_KEYS)
        if keys is None or not r.require(item, keys, where, ("kind",)):
            continue
        values = _read(r, keys, where, {"kind": r.text, "at": r.duration, "duration": r.duration,
                                         "devices": r.number, "params": lambda n, f: _params(r, n, f)})
        if "kind" in values:
            faults.append(with_changes(FaultSpec(kind=""), values))
    return tuple(faults)


def _campaign(r: NodeReader, node: Node) -> CampaignSettings | None:
    keys = r.mapping(node, "campaign", _CAMPAIGN_KEYS)
    if keys is None:
        return None
    values = _read(r, keys, "campaign", {
        "max_in_progress": r.integer, "request_timeout": r.duration, "request_retries": r.integer,
        "max_failure_percentage": r.number, "url": r.text})
    if "request_timeout" in values:  # YAML says `request_timeout: 5m`; the field holds seconds
        values["request_timeout_s"] = values.pop("request_timeout")
    return with_changes(CampaignSettings(), values)


def _extra(r: NodeReader, keys: Mapping[str, Node]) -> dict[str, str]:
    """`description` and top-level `x-...` extension keys, as text."""
    wanted = [key for key in keys if key == "description" or key.startswith("x-")]
    return {key: text for key in wanted if (text := r.text(keys[key], key)) is not None}


def _read_scenario(r: NodeReader, root: Node, name: str) -> tuple[Scenario, list[str] | None]:
    """The scenario as far as it reads well (defaults elsewhere) and the lifecycle field prefixes."""
    scenario = Scenario(name=name, source=r.source)
    keys = r.mapping(root, "", TOP_KEYS)
    if keys is None:
        return scenario, None
    values = _read(r, keys, "", {
        "name": r.text, "realm": r.text, "seed": r.integer, "time_scale": r.number, "duration": r.duration,
        "graceful_stop": r.duration, "transport": r.text, "target": r.text, "mode": r.text,
        "fleet": lambda n, f: _fleet(r, n), "arrival": lambda n, f: _arrival(r, n),
        "thresholds": lambda n, f: _thresholds(r, n), "faults": lambda n, f: _faults(r, n),
        "campaign": lambda n, f: _campaign(r, n)})
    prefixes: list[str] | None = None
    if "lifecycle" in keys:
        read = read_lifecycle(r, keys["lifecycle"])
        if read is not None:
            values["lifecycle"], prefixes = read
    if "thresholds" in values:  # `on_missing` sits among the thresholds but is a setting, not a metric
        pairs: tuple[tuple[str, str], ...] = values["thresholds"]  # type: ignore[assignment]
        values["thresholds"] = tuple(p for p in pairs if p[0] != ON_MISSING)
        for key, value in pairs:
            if key == ON_MISSING:
                values["thresholds_on_missing"] = value
    scenario = with_changes(scenario, {**values, "extra": _extra(r, keys)})
    return scenario, prefixes


def _related(a: str, b: str) -> bool:
    """True when one dotted field is the other or lies inside it."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))


def _line(r: NodeReader, field: str) -> int:
    """The line of `field`, or of the nearest enclosing field written in the file (0: the whole file)."""
    while field:
        if field in r.lines:
            return r.lines[field]
        cut = max(field.rfind("."), field.rfind("["))
        field = field[:cut] if cut > 0 else ""
    return 0


def _script_problems(scenario: Scenario, prefixes: list[str]) -> list[tuple[str, int, str]]:
    """(field, line, message) from the lifecycle machine's script check, when that module exists."""
    try:
        from simulator.lifecycle.script_check import check_script  # written by the lifecycle engineer
    except ImportError:
        return []
    out: list[tuple[str, int, str]] = []
    for entry, prefix in zip(scenario.lifecycle, prefixes, strict=False):
        if entry.scripted is None:
            continue
        steps = entry.scripted.steps
        try:
            found = check_script(entry.scripted)
        except Exception as exc:  # another module's bug must still not become a user-facing traceback
            out.append((f"{prefix}.scripted", steps[0].line if steps else 0, f"script check failed: {exc}"))
            continue
        for index, message in found:
            inside = 0 <= index < len(steps)
            field = f"{prefix}.scripted.steps[{index}]" if inside else f"{prefix}.scripted.steps"
            out.append((field, steps[index].line if inside else 0, message))
    return out


def _syntax_error(source: str, text: str, exc: yaml.YAMLError) -> ConfigError:
    """One ConfigError at the parser's mark (or at the offending character of a reader error)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        line = int(mark.line) + 1 if mark is not None else 0
        lines = text.splitlines()
        if 0 < line <= len(lines) and re.search(r":\s*[<>]", lines[line - 1]):
            problem += ' (quote threshold expressions: "> 5"; a bare > or | starts a block scalar)'
        return ConfigError(source, line, "", f"YAML syntax error: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(0, int(exc.position))) + 1
        return ConfigError(source, line, "", f"YAML syntax error: {exc.reason} (character {exc.character!r})")
    return ConfigError(source, 0, "", f"YAML syntax error: {exc}")


# libyaml's parser when PyYAML was built with it: ~20x faster than the pure-Python one (1 ms vs 23 ms for a
# typical scenario, measured here), same resolver and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(source: str, text: str) -> Node:
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigErrors([_syntax_error(source, text, exc)]) from None
    except UnicodeEncodeError as exc:  # lone surrogates: a str that no file could hold
        problem = ConfigError(source, text.count("\n", 0, exc.start) + 1, "", "text is not valid Unicode")
        raise ConfigErrors([problem]) from None
    if root is None or (isinstance(root, ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
        raise ConfigErrors([ConfigError(source, 0, "", "the file is empty; a scenario is a YAML mapping "
                                                       "(see scenarios/quickstart.yaml)")])
    return root


def _load(text: str, source: str, name: str) -> Scenario:
    root = _compose(source, text)
    r = NodeReader(source)
    scenario, prefixes = _read_scenario(r, root, name)
    read_errors = list(r.errors)
    problems = check_scenario(scenario, prefixes)
    for field, message in problems:
        if not any(_related(field, err.field) for err in read_errors):  # no echo of a reported read error
            r.error(_line(r, field), field, message)
    if not r.errors and prefixes is not None:
        for field, line, message in _script_problems(scenario, prefixes):
            r.error(line or _line(r, field), field, message)
    if r.errors:
        raise ConfigErrors(sorted(r.errors, key=lambda e: e.line))
    return scenario


def load_scenario_text(text: str, source: str = "<text>") -> Scenario:
    """The Scenario written in `text`; `source` names it in errors (its stem is the default name)."""
    try:
        return _load(text, source, Path(source).stem or "scenario")
    except RecursionError:
        problem = ConfigError(source, 0, "", "the YAML is nested too deeply (or refers to itself)")
        raise ConfigErrors([problem]) from None


def load_scenario(
    path: str | Path,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Scenario:
    """Load, validate and (with `overrides` / `env`) layer a scenario file: defaults < YAML < env < CLI."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigErrors([ConfigError(source, 0, "", "no such file")]) from None
    except UnicodeDecodeError as exc:
        problem = ConfigError(source, 0, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raise ConfigErrors([problem]) from None
    except OSError as exc:
        raise ConfigErrors([ConfigError(source, 0, "", f"cannot read: {exc.strerror or exc}")]) from None
    scenario = load_scenario_text(text, source)
    if overrides or env:
        scenario = apply_overrides(scenario, overrides or {}, env or {})
    return scenario
