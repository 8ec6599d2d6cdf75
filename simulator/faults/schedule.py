"""Scenario faults -> a timed, seeded list of steps (pure: no I/O, no clock reads; issue 9).

Which devices a fault hits is drawn from the scenario seed (numpy `SeedSequence(seed, spawn_key=(FAULT_STREAM,
i))`, docs/design.md principle 9), so the same scenario and seed always hit the same devices, whatever the worker
count. Times are seconds of wall time from the run's start (the plan's offset 0).

Kinds and their params (strings in YAML; defaults in brackets):
  disconnect      the devices drop offline at `at` and reconnect after `duration`
  reboot_storm    each device reboots at a seeded instant within [at, at + duration], offline `reboot` [5s]
  broker_restart  the backend's broker stops at `at` and starts again on the same port after `duration`
  network_delay   every chunk of the proxied devices is held `delay_ms` [100] each way, for `duration`
  stall           the proxy forwards nothing for `duration` (connections stay open)
  reset           the proxy sends RST on every proxied connection at `at`; then refuses new ones `duration`
  clock_skew      the devices' clocks are `offset` [60s] ahead (negative: `-60s`) for `duration`
  duplicate       each OTAEvent the devices publish is sent `copies` [1] extra times, for `duration`
  slow_device     each publish of the devices waits `delay_ms` [200] first, for `duration`
Network kinds (network_delay, stall, reset) act on the fault proxy, so on every device that connects
through it: the largest `devices` fraction among them, the first devices of one seeded permutation (a
smaller fraction cannot be honoured per fault with one proxy; the log reports the devices really affected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.errors import ConfigError, ConfigErrors
from simulator.scenario.durations import parse_duration
from simulator.scenario.model import FaultSpec, Scenario

__all__ = [
    "BACKEND_KINDS",
    "DEVICE_KINDS",
    "FAULT_STREAM",
    "NETWORK_KINDS",
    "FaultAction",
    "FaultSchedule",
    "Step",
    "build_schedule",
    "describe",
]

FAULT_STREAM = 0xFA  # spawn_key root of the fault draws (plan.py uses 0 for devices, 1 for arrivals)
NETWORK_KINDS = frozenset({"network_delay", "stall", "reset"})
BACKEND_KINDS = frozenset({"broker_restart"})
DEVICE_KINDS = frozenset({"disconnect", "reboot_storm", "clock_skew", "duplicate", "slow_device"})
Params = tuple[tuple[str, float], ...]
_NETWORK_PERMUTATION = 0xFFFF  # the spawn key of the proxied devices' permutation

# name -> (kind "duration" | "number" | "int", default, minimum)
_PARAMS: dict[str, dict[str, tuple[str, float, float]]] = {
    "network_delay": {"delay_ms": ("number", 100.0, 0.0)},
    "reboot_storm": {"reboot": ("duration", 5.0, 0.0)},
    "clock_skew": {"offset": ("signed_duration", 60.0, -math.inf)},
    "duplicate": {"copies": ("int", 1.0, 1.0)},
    "slow_device": {"delay_ms": ("number", 200.0, 0.0)},
}


@dataclass(frozen=True)
class FaultAction:
    """One scenario fault, resolved: its devices (plan indexes) and numeric params."""

    index: int  # position in scenario.faults
    kind: str
    at: float  # seconds from the run's start
    duration: float
    devices: tuple[int, ...]  # affected device indexes; () for broker_restart (the whole backend)
    params: Params = ()

    def param(self, name: str) -> float:
        return dict(self.params)[name]


@dataclass(frozen=True)
class Step:
    """One thing to do at `t` (s from the run's start): `phase` "start" or "end" of `action`, on `device`
    (None: the action as a whole, e.g. the proxy or the broker)."""

    t: float
    action: FaultAction
    phase: str
    device: int | None = None


@dataclass(frozen=True)
class FaultSchedule:
    actions: tuple[FaultAction, ...]
    steps: tuple[Step, ...]  # sorted by t; ties: scenario order, then start before end
    proxied: tuple[int, ...]  # devices that must connect through the fault proxy (sorted)

    @property
    def needs_proxy(self) -> bool:
        return bool(self.proxied)

    @property
    def needs_fleet(self) -> bool:
        return any(a.kind in DEVICE_KINDS for a in self.actions)


def _count(fraction: float, fleet: int) -> int:
    return max(1, min(fleet, math.ceil(fraction * fleet - 1e-9))) if fleet else 0


def _rng(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(FAULT_STREAM, key)))


def _params(index: int, fault: FaultSpec, source: str) -> tuple[Params, list[ConfigError]]:
    spec = _PARAMS.get(fault.kind, {})
    given = dict(fault.params)
    errors = [ConfigError(source, 0, f"faults[{index}].params.{name}",
                          f"unknown parameter for {fault.kind} (known: {', '.join(sorted(spec)) or 'none'})")
              for name in given if name not in spec]
    out: list[tuple[str, float]] = []
    for name, (kind, default, minimum) in sorted(spec.items()):
        raw = given.get(name)
        value: float | None = default
        if raw is not None:
            text = raw.strip()
            if kind == "signed_duration":
                neg = text.startswith("-")
                parsed = parse_duration(text.lstrip("+-"))
                value = None if parsed is None else (-parsed if neg else parsed)
            elif kind == "duration":
                value = parse_duration(text)
            else:
                try:
                    value = float(text)
                except ValueError:
                    value = None
                if kind == "int" and value is not None and value != int(value):
                    value = None
        field = f"faults[{index}].params.{name}"
        if value is None or not math.isfinite(value):
            what = {"int": "an integer", "number": "a number"}.get(kind, "a duration like 5s or 250ms")
            errors.append(ConfigError(source, 0, field, f"expected {what}, got {raw!r}"))
        elif value < minimum:
            errors.append(ConfigError(source, 0, field, f"must be >= {minimum:g}, got {raw}"))
        else:
            out.append((name, value))
    return tuple(out), errors


def build_schedule(scenario: Scenario, device_count: int | None = None) -> FaultSchedule:
    """The schedule of `scenario.faults`; raises ConfigErrors (file, field) on a bad fault parameter."""
    faults: Sequence[FaultSpec] = scenario.faults
    fleet = scenario.fleet.devices if device_count is None else device_count
    source = scenario.source or scenario.name
    errors: list[ConfigError] = []
    network_share = max((f.devices for f in faults if f.kind in NETWORK_KINDS), default=0.0)
    proxied: tuple[int, ...] = ()
    if network_share > 0:
        order = _rng(scenario.seed, _NETWORK_PERMUTATION).permutation(fleet)
        proxied = tuple(sorted(int(d) for d in order[:_count(network_share, fleet)]))
        if scenario.transport != "lean":
            errors += [ConfigError(source, 0, f"faults[{i}].kind",
                                   f"{f.kind} needs the fault proxy, which only transport: lean can use "
                                   f"(this scenario uses {scenario.transport})")
                       for i, f in enumerate(faults) if f.kind in NETWORK_KINDS]
    actions: list[FaultAction] = []
    steps: list[tuple[float, int, int, Step]] = []
    for i, fault in enumerate(faults):
        params, problems = _params(i, fault, source)
        errors += problems
        if fault.kind in NETWORK_KINDS:
            devices = proxied
        elif fault.kind in BACKEND_KINDS:
            devices = ()
        else:
            picked = _rng(scenario.seed, i).choice(fleet, size=_count(fault.devices, fleet), replace=False)
            devices = tuple(sorted(int(d) for d in picked))
        action = FaultAction(i, fault.kind, fault.at, fault.duration, devices, params)
        actions.append(action)
        if fault.kind == "reboot_storm" and not problems:
            offsets = _rng(scenario.seed, 0x10000 + i).uniform(0.0, fault.duration, size=len(devices))
            reboot = action.param("reboot")
            for device, offset in zip(devices, offsets, strict=True):
                t = fault.at + float(offset)
                steps.append((t, i, 0, Step(t, action, "start", device)))
                steps.append((t + reboot, i, 1, Step(t + reboot, action, "end", device)))
            continue
        steps.append((fault.at, i, 0, Step(fault.at, action, "start")))
        if fault.kind != "reset" or fault.duration > 0:
            end = fault.at + fault.duration
            steps.append((end, i, 1, Step(end, action, "end")))
    if errors:
        raise ConfigErrors(errors)
    steps.sort(key=lambda s: (s[0], s[1], s[2], -1 if s[3].device is None else s[3].device))
    return FaultSchedule(tuple(actions), tuple(s[3] for s in steps), proxied)


def describe(action: FaultAction) -> dict[str, object]:
    """The results' view of an action (no timing: the executor adds started/ended)."""
    return {"kind": action.kind, "at": action.at, "duration": action.duration, "devices": len(action.devices),
            "params": dict(action.params)}
