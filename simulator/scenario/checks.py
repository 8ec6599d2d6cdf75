"""Semantic checks of a built Scenario: impossible values, bad enum choices, bad status/code strings.

Run by the loader (which maps each dotted field back to its YAML line) and again by config.apply_overrides
after FLEETSIM_* / CLI layers, so an override cannot produce a scenario the file could not. Pure: returns
(dotted field, message) pairs, never raises.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence

from simulator.arrival import MAX_ARRIVALS, expected_arrivals
from simulator.arrival import check as check_arrival
from simulator.events import OtaStatus, OtaStatusCode
from simulator.metrics.metric_table import METRICS
from simulator.scenario.model import (
    CampaignSettings,
    Distribution,
    FaultSpec,
    FleetSpec,
    LifecycleMixEntry,
    RandomLifecycle,
    Scenario,
    ScriptedLifecycle,
)
from simulator.scenario.thresholds import threshold_error

__all__ = [
    "DOWNLOAD_ERROR_CODES",
    "FAULT_KINDS",
    "MAX_DEVICES",
    "OUTCOMES",
    "PROBABILITY_TOLERANCE",
    "Problem",
    "check_scenario",
    "lifecycle_prefixes",
]

Problem = tuple[str, str]  # (dotted field, message)

# Final outcomes of a random lifecycle (model.RandomLifecycle docstring; docs/protocol.md section 4).
OUTCOMES = ("success", "download_exhausted", "invalid_base_image", "io_error", "reboot_failure", "rollback",
            "cancel", "late_cancel")
# Codes of a failed download attempt in edgehog-device-runtime src/ota/mod.rs (docs/protocol.md section 4).
DOWNLOAD_ERROR_CODES = ("NetworkError", "IOError", "InternalError")
FAULT_KINDS = ("disconnect", "reboot_storm", "broker_restart", "network_delay", "stall", "reset",
               "clock_skew", "duplicate", "slow_device")
PROBABILITY_TOLERANCE = 1e-9  # probabilities / weights must sum to 1 within this
MAX_DEVICES = 10_000_000  # a sanity bound (a typo guard), far beyond one run on one machine (docs/protocol.md s.7)
_STATUSES = tuple(s.value for s in OtaStatus)
_CODES = tuple(c.value for c in OtaStatusCode)
# A sequential id is the prefix padded to 12 bytes, then the index in 4 bytes (simulator/ids.py).
_MAX_ID_PREFIX = 12
# Astarte realm names: a lowercase letter then lowercase letters/digits, at most 48 characters, not reserved
# (astarte_core Astarte.Core.Realm.valid_name?; its tests reject "my_realm", "my-realm", "astarte", "system").
_REALM = re.compile(r"[a-z][a-z0-9]{0,47}")
_RESERVED_REALMS = ("astarte", "system", "system_auth", "system_distributed", "system_schema",
                    "system_traces")
# Edgehog reads BaseImage /version as semver (docs/protocol.md section 5) to skip devices already updated.
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)


def _unknown(what: str, value: str, choices: Sequence[str]) -> str:
    """"unknown X 'v'; did you mean 'w'?" (difflib), or the list of choices when nothing is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    if close:
        return f"unknown {what} {value!r}; did you mean {close[0]!r}?"
    return f"unknown {what} {value!r}; choose from {', '.join(repr(c) for c in choices)}"


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _positive(field: str, value: float, unit: str) -> list[Problem]:
    return [] if _finite(value) and value > 0 else [(field, f"must be > 0 {unit}, got {value}")]


def _non_negative(field: str, value: float, unit: str) -> list[Problem]:
    return [] if _finite(value) and value >= 0 else [(field, f"must be >= 0 {unit}, got {value}")]


def _probability(field: str, value: float) -> list[Problem]:
    if _finite(value) and 0 <= value <= 1:
        return []
    return [(field, f"must be a probability in [0, 1], got {value}")]


def _weights(
    field: str, pairs: Sequence[tuple[str, float]], allowed: Sequence[str], what: str
) -> list[Problem]:
    """Names in `allowed`, each weight in [0, 1], no duplicates, sum 1 within PROBABILITY_TOLERANCE."""
    out: list[Problem] = []
    seen: set[str] = set()
    for name, weight in pairs:
        if name not in allowed:
            out.append((f"{field}.{name}", _unknown(what, name, allowed)))
        elif name in seen:
            out.append((f"{field}.{name}", f"{what} listed twice"))
        seen.add(name)
        out += _probability(f"{field}.{name}", weight)
    if not pairs:
        out.append((field, f"needs at least one {what}"))
    elif not out and abs(math.fsum(w for _, w in pairs) - 1.0) > PROBABILITY_TOLERANCE:
        total = math.fsum(w for _, w in pairs)
        out.append((field, f"must sum to 1 (within {PROBABILITY_TOLERANCE:g}), got {total:.12g}"))
    return out


def _distribution(field: str, d: Distribution) -> list[Problem]:
    """Durations in seconds of device time; every parameter finite and the shape possible."""
    if d.kind == "fixed":
        return _non_negative(field, d.value, "s")
    if d.kind == "uniform":
        out = _non_negative(f"{field}.uniform", d.low, "s") + _non_negative(f"{field}.uniform", d.high, "s")
        if not out and d.low > d.high:
            out.append((f"{field}.uniform", f"low {d.low} s is above high {d.high} s"))
        return out
    if d.kind == "lognormal":
        return _positive(f"{field}.lognormal.median", d.median, "s") + _non_negative(
            f"{field}.lognormal.sigma", d.sigma, ""
        )
    if d.kind == "exponential":
        return _positive(f"{field}.exponential.mean", d.mean, "s")
    return [(field, f"unknown distribution {d.kind!r}; use a duration, lognormal, uniform or exponential")]


def _random(field: str, r: RandomLifecycle) -> list[Problem]:
    out = _weights(f"{field}.outcomes", r.outcomes, OUTCOMES, "outcome")
    out += _weights(f"{field}.error_codes", r.error_codes, DOWNLOAD_ERROR_CODES, "error code")
    for name in ("download_duration", "deploy_duration", "reboot_duration", "acknowledge_delay", "shutdown_delay"):
        out += _distribution(f"{field}.{name}", getattr(r, name))
    if not 10 <= r.progress_step <= 100:
        out.append((f"{field}.progress_step",
                    f"must be between 10 and 100 percentage points (the runtime reports >= 10-point rises), "
                    f"got {r.progress_step}"))
    out += _probability(f"{field}.download_error_probability", r.download_error_probability)
    out += _probability(f"{field}.double_update_probability", r.double_update_probability)
    out += _choice(f"{field}.download", r.download, ("simulate", "fetch"))
    if r.download == "fetch" and r.streaming:
        out.append((f"{field}.download", "fetch needs a downloading lifecycle (streaming: false)"))
    return out


def _scripted(field: str, s: ScriptedLifecycle) -> list[Problem]:
    out = _non_negative(f"{field}.reboot_duration", s.reboot_duration, "s")
    if not s.steps:
        out.append((f"{field}.steps", "a scripted lifecycle needs at least one step"))
    for index, step in enumerate(s.steps):
        where = f"{field}.steps[{index}]"
        if step.status not in _STATUSES:
            out.append((f"{where}.status", _unknown("status", step.status, _STATUSES)))
        if step.code not in _CODES:
            out.append((f"{where}.code", _unknown("status code", step.code, _CODES)))
        if not 0 <= step.progress <= 100:
            out.append((f"{where}.progress", f"must be 0..100 percent, got {step.progress}"))
        out += _non_negative(f"{where}.delay", step.delay, "s")
    return out


def lifecycle_prefixes(entries: Sequence[LifecycleMixEntry]) -> list[str]:
    """Field prefix of each entry: `lifecycle` for a single one, `lifecycle.mix[i]` in a mix."""
    return ["lifecycle"] if len(entries) == 1 else [f"lifecycle.mix[{i}]" for i in range(len(entries))]


def _lifecycle(entries: Sequence[LifecycleMixEntry], prefixes: Sequence[str]) -> list[Problem]:
    out: list[Problem] = []
    if not entries:
        return [("lifecycle", "needs one of random, scripted or mix")]
    names: set[str] = set()
    for entry, prefix in zip(entries, prefixes, strict=False):
        if (entry.random is None) == (entry.scripted is None):
            out.append((prefix, "needs exactly one of random or scripted"))
        if entry.random is not None:
            out += _random(f"{prefix}.random", entry.random)
        if entry.scripted is not None:
            out += _scripted(f"{prefix}.scripted", entry.scripted)
        if entry.name and entry.name in names:
            out.append((f"{prefix}.name", f"name {entry.name!r} is used twice in the mix"))
        names.add(entry.name)
    if len(entries) > 1 or any(prefix.startswith("lifecycle.mix") for prefix in prefixes):
        for entry, prefix in zip(entries, prefixes, strict=False):
            out += _probability(f"{prefix}.weight", entry.weight)
        total = math.fsum(e.weight for e in entries)
        if all(_finite(e.weight) for e in entries) and abs(total - 1.0) > PROBABILITY_TOLERANCE:
            out.append(("lifecycle.mix", f"weights must sum to 1 (within {PROBABILITY_TOLERANCE:g}), "
                                         f"got {total:.12g}"))
    return out


def _fleet(f: FleetSpec) -> list[Problem]:
    out: list[Problem] = []
    if not 1 <= f.devices <= MAX_DEVICES:
        out.append(("fleet.devices", f"must be between 1 and {MAX_DEVICES:,}, got {f.devices}"))
    if f.id_scheme not in ("random", "sequential"):
        out += _choice("fleet.id_scheme", f.id_scheme, ("random", "sequential"))
    elif f.id_prefix and f.id_scheme != "sequential":
        out.append(("fleet.id_prefix", "only used with id_scheme: sequential"))
    elif (size := len(f.id_prefix.encode("utf-8", "surrogatepass"))) > _MAX_ID_PREFIX:
        message = f"{f.id_prefix!r} is {size} bytes; at most {_MAX_ID_PREFIX} fit in a device id"
        out.append(("fleet.id_prefix", message))
    if not f.base_image.name:
        out.append(("fleet.base_image.name", "must not be empty"))
    for field, version in (("fleet.base_image.version", f.base_image.version),
                           ("fleet.target_version", f.target_version)):
        if not _SEMVER.fullmatch(version):
            out.append((field, f"{version!r} is not a semantic version MAJOR.MINOR.PATCH (Edgehog reads it)"))
    return out + _ramp(f)


def _ramp(f: FleetSpec) -> list[Problem]:
    out: list[Problem] = []
    previous = 0
    for index, stage in enumerate(f.ramp):
        where = f"fleet.ramp[{index}]"
        out += _positive(f"{where}.duration", stage.duration, "s")
        if not 0 <= stage.devices <= f.devices:
            out.append((f"{where}.devices", f"must be between 0 and fleet.devices ({f.devices}), "
                                            f"got {stage.devices}"))
        elif stage.devices < previous:
            # The plan keeps a device busy once it is online; one taken offline would leave its operations
            # unsent, so the ramp only brings devices online.
            out.append((f"{where}.devices", f"must not go down (the previous stage reaches {previous}), "
                                            f"got {stage.devices}"))
        else:
            previous = stage.devices
    return out


def _fault(index: int, fault: FaultSpec) -> list[Problem]:
    where = f"faults[{index}]"
    out: list[Problem] = []
    if fault.kind not in FAULT_KINDS:
        out.append((f"{where}.kind", _unknown("fault kind", fault.kind, FAULT_KINDS)))
    out += _non_negative(f"{where}.at", fault.at, "s")
    out += _non_negative(f"{where}.duration", fault.duration, "s")
    if not (_finite(fault.devices) and 0 < fault.devices <= 1):
        out.append((f"{where}.devices", f"must be a fraction of the fleet in (0, 1], got {fault.devices}"))
    return out


def _campaign(c: CampaignSettings) -> list[Problem]:
    """Edgehog's campaign rules (docs/protocol.md section 5): timeout >= 30 s, retries >= 0, percentage 0..100."""
    out: list[Problem] = []
    if c.max_in_progress < 1:
        out.append(("campaign.max_in_progress", f"must be >= 1, got {c.max_in_progress}"))
    if not (_finite(c.request_timeout_s) and c.request_timeout_s >= 30):
        out.append(("campaign.request_timeout",
                    f"must be >= 30 s (Edgehog's minimum request timeout), got {c.request_timeout_s:g}"))
    if c.request_retries < 0:
        out.append(("campaign.request_retries", f"must be >= 0, got {c.request_retries}"))
    if not (_finite(c.max_failure_percentage) and 0 <= c.max_failure_percentage <= 100):
        out.append(("campaign.max_failure_percentage", f"must be 0..100 %, got {c.max_failure_percentage:g}"))
    if not c.url:
        out.append(("campaign.url", "must not be empty"))
    return out


def _choice(field: str, value: str, choices: Sequence[str]) -> list[Problem]:
    return [] if value in choices else [(field, _unknown("choice", value, choices))]


def check_scenario(s: Scenario, prefixes: Sequence[str] | None = None) -> list[Problem]:
    """Every semantic problem of `s`. `prefixes`: lifecycle field prefixes (default lifecycle_prefixes)."""
    out: list[Problem] = []
    if not s.name:
        out.append(("name", "must not be empty"))
    if not _REALM.fullmatch(s.realm) or s.realm in _RESERVED_REALMS:
        out.append(("realm", f"{s.realm!r} is not a valid Astarte realm name (a lowercase letter, then "
                             "lowercase letters or digits, at most 48, not reserved)"))
    if s.seed < 0:
        out.append(("seed", f"must be >= 0 (a numpy SeedSequence entropy), got {s.seed}"))
    out += _fleet(s.fleet)
    out += _positive("time_scale", s.time_scale, "device seconds per wall second")
    out += _positive("duration", s.duration, "s")
    out += _non_negative("graceful_stop", s.graceful_stop, "s")
    out += [(f"arrival.{field}", message) for field, message in check_arrival(s.arrival)]
    if _finite(s.duration) and _finite(s.arrival.start) and s.arrival.start >= s.duration > 0:
        out.append(("arrival.start", f"{s.arrival.start} s is not before the run's end ({s.duration} s)"))
    elif not out and expected_arrivals(s.arrival, s.duration) > MAX_ARRIVALS:
        out.append(("arrival", f"plans about {expected_arrivals(s.arrival, s.duration):,.0f} operations; the "
                               f"limit is {MAX_ARRIVALS:,} (set count, or lower rate or duration)"))
    names = list(prefixes) if prefixes is not None else lifecycle_prefixes(s.lifecycle)
    out += _lifecycle(s.lifecycle, names)
    out += _choice("transport", s.transport, ("lean", "sdk", "memory"))
    out += _choice("mode", s.mode, ("self", "responder", "campaign"))
    if not s.target:
        out.append(("target", "must be 'embedded' or the path of a target file"))
    out += _choice("thresholds.on_missing", s.thresholds_on_missing, ("fail", "skip"))
    for metric, expr in s.thresholds:
        message = threshold_error(metric, expr)
        if message is None and metric not in METRICS:
            message = _unknown("metric", metric, sorted(METRICS))
        if message is not None:
            out.append((f"thresholds.{metric}", message))
    for index, fault in enumerate(s.faults):
        out += _fault(index, fault)
    return out + _campaign(s.campaign)
