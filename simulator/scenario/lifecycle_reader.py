"""Reading the `lifecycle:` section of a scenario: one `random`, one `scripted`, or a weighted `mix` of them.

Shapes (durations: loader docstring; every duration is device time, before time_scale):
    random:   {outcomes: {name: p}, streaming, download_duration, deploy_duration, reboot_duration, shutdown_delay,
               acknowledge_delay, progress_step, download_error_probability, error_codes: {code: w},
               double_update_probability}
    scripted: {steps: [{status, progress, code, message, delay}], reboot_duration}
    mix:      [{weight, name, random: {...} | scripted: {...}}]
A distribution is a duration (fixed), or {lognormal: {median, sigma}}, {uniform: [low, high]},
{exponential: {mean}} or {fixed: duration}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from yaml.nodes import MappingNode, Node

from simulator.scenario.model import (
    Distribution,
    LifecycleMixEntry,
    RandomLifecycle,
    ScriptedLifecycle,
    ScriptedStep,
)
from simulator.scenario.nodes import NodeReader, line_of, with_changes

__all__ = ["RANDOM_KEYS", "read_lifecycle"]

RANDOM_KEYS = (
    "outcomes", "streaming", "download_duration", "deploy_duration", "reboot_duration", "acknowledge_delay",
    "progress_step", "download_error_probability", "error_codes", "double_update_probability", "shutdown_delay",
    "download",
)
_DISTRIBUTIONS = ("lognormal", "uniform", "exponential", "fixed")
_STEP_KEYS = ("status", "progress", "code", "message", "delay")


def read_distribution(r: NodeReader, node: Node, field: str) -> Distribution | None:
    """A Distribution in seconds, or None after reporting why not."""
    if not isinstance(node, MappingNode):
        seconds = r.duration(node, field)
        return None if seconds is None else Distribution("fixed", value=seconds)
    keys = r.mapping(node, field, _DISTRIBUTIONS)
    if keys is None:
        return None
    if len(keys) != 1:
        if keys or not node.value:  # (all keys unknown: already reported)
            r.error(line_of(node), field, f"give a duration or exactly one of {', '.join(_DISTRIBUTIONS)}")
        return None
    kind, sub = next(iter(keys.items()))
    where = f"{field}.{kind}"
    if kind == "fixed":
        seconds = r.duration(sub, where)
        return None if seconds is None else Distribution("fixed", value=seconds)
    if kind == "uniform":
        items = r.sequence(sub, where)
        if items is None:
            return None
        if len(items) != 2:
            r.error(line_of(sub), where, f"expected [low, high] (two durations), got {len(items)} items")
            return None
        low, high = r.duration(items[0], f"{where}[0]"), r.duration(items[1], f"{where}[1]")
        return None if low is None or high is None else Distribution("uniform", low=low, high=high)
    wanted = ("median", "sigma") if kind == "lognormal" else ("mean",)
    params = r.mapping(sub, where, wanted)
    if params is None or not r.require(sub, params, where, wanted):
        return None
    if kind == "lognormal":
        median = r.duration(params["median"], f"{where}.median")
        sigma = r.number(params["sigma"], f"{where}.sigma")
        if median is None or sigma is None:
            return None
        return Distribution("lognormal", median=median, sigma=sigma)
    mean = r.duration(params["mean"], f"{where}.mean")
    return None if mean is None else Distribution("exponential", mean=mean)


def _weights(r: NodeReader, node: Node, field: str) -> tuple[tuple[str, float], ...] | None:
    """A {name: weight} mapping as ordered pairs; entries with a bad weight are left out (reported)."""
    keys = r.mapping_any(node, field)
    if keys is None:
        return None
    pairs = [(name, r.number(value, f"{field}.{name}")) for name, value in keys.items()]
    return tuple((name, weight) for name, weight in pairs if weight is not None)


def read_random(r: NodeReader, node: Node, field: str) -> RandomLifecycle | None:
    keys = r.mapping(node, field, RANDOM_KEYS)
    if keys is None:
        return None
    readers: dict[str, Callable[[Node, str], object]] = {
        "outcomes": lambda n, f: _weights(r, n, f),
        "error_codes": lambda n, f: _weights(r, n, f),
        "streaming": r.boolean,
        "download": r.text,
        "progress_step": r.integer,
        "download_error_probability": r.number,
        "double_update_probability": r.number,
        "download_duration": lambda n, f: read_distribution(r, n, f),
        "deploy_duration": lambda n, f: read_distribution(r, n, f),
        "reboot_duration": lambda n, f: read_distribution(r, n, f),
        "acknowledge_delay": lambda n, f: read_distribution(r, n, f),
        "shutdown_delay": lambda n, f: read_distribution(r, n, f),
    }
    changes = {key: readers[key](value, f"{field}.{key}") for key, value in keys.items()}
    return with_changes(RandomLifecycle(), {k: v for k, v in changes.items() if v is not None})


def _read_step(r: NodeReader, node: Node, field: str) -> ScriptedStep | None:
    keys = r.mapping(node, field, _STEP_KEYS)
    if keys is None or not r.require(node, keys, field, ("status",)):
        return None
    readers: dict[str, Callable[[Node, str], object]] = {
        "status": r.text, "code": r.text, "message": r.text, "progress": r.integer, "delay": r.duration,
    }
    changes = {key: readers[key](value, f"{field}.{key}") for key, value in keys.items()}
    if changes.get("status") is None:
        return None
    kept = {k: v for k, v in changes.items() if v is not None}
    return with_changes(ScriptedStep(status="", line=line_of(node)), kept)


def read_scripted(r: NodeReader, node: Node, field: str) -> ScriptedLifecycle | None:
    keys = r.mapping(node, field, ("steps", "reboot_duration"))
    if keys is None or not r.require(node, keys, field, ("steps",)):
        return None
    items = r.sequence(keys["steps"], f"{field}.steps")
    if items is None:
        return None
    steps = [_read_step(r, item, f"{field}.steps[{i}]") for i, item in enumerate(items)]
    reboot = None
    if "reboot_duration" in keys:
        reboot = r.duration(keys["reboot_duration"], f"{field}.reboot_duration")
    if any(step is None for step in steps):
        return None
    lifecycle = ScriptedLifecycle(steps=tuple(s for s in steps if s is not None))
    return lifecycle if reboot is None else dataclasses.replace(lifecycle, reboot_duration=reboot)


def _read_one(r: NodeReader, node: MappingNode, keys: dict[str, Node], field: str,
              weight: float, name: str) -> LifecycleMixEntry | None:
    """The random or scripted lifecycle under `keys` (exactly one of them)."""
    kinds = [k for k in ("random", "scripted") if k in keys]
    if len(kinds) != 1:
        r.error(line_of(node), field, "give exactly one of random or scripted")
        return None
    if kinds[0] == "random":
        random = read_random(r, keys["random"], f"{field}.random")
        return None if random is None else LifecycleMixEntry(weight=weight, random=random, name=name)
    scripted = read_scripted(r, keys["scripted"], f"{field}.scripted")
    return None if scripted is None else LifecycleMixEntry(weight=weight, scripted=scripted, name=name)


def read_lifecycle(r: NodeReader, node: Node) -> tuple[tuple[LifecycleMixEntry, ...], list[str]] | None:
    """The lifecycle entries and the field prefix of each (`lifecycle` or `lifecycle.mix[i]`)."""
    keys = r.mapping(node, "lifecycle", ("random", "scripted", "mix"))
    if keys is None:
        return None
    assert isinstance(node, MappingNode)
    if "mix" not in keys:
        entry = _read_one(r, node, keys, "lifecycle", 1.0, "")
        return None if entry is None else ((entry,), ["lifecycle"])
    if len(keys) != 1:
        r.error(line_of(node), "lifecycle", "give exactly one of random, scripted or mix")
        return None
    items = r.sequence(keys["mix"], "lifecycle.mix")
    if items is None:
        return None
    if not items:
        r.error(line_of(keys["mix"]), "lifecycle.mix", "a mix needs at least one entry")
        return None
    entries: list[LifecycleMixEntry | None] = []
    for index, item in enumerate(items):
        field = f"lifecycle.mix[{index}]"
        sub = r.mapping(item, field, ("weight", "name", "random", "scripted"))
        if sub is None or not isinstance(item, MappingNode) or not r.require(item, sub, field, ("weight",)):
            entries.append(None)
            continue
        weight = r.number(sub["weight"], f"{field}.weight")
        name = r.text(sub["name"], f"{field}.name") if "name" in sub else ""
        entry = _read_one(r, item, sub, field, weight if weight is not None else 0.0, name or "")
        entries.append(entry if weight is not None and name is not None else None)
    if any(entry is None for entry in entries):
        return None
    done = tuple(e for e in entries if e is not None)
    return done, [f"lifecycle.mix[{i}]" for i in range(len(done))]
