"""A replay file as a plan: `fleetsim replay` plays it through `execute` and the Locust driver like any run.

The file becomes a `FleetPlan` (simulator.plan) whose per-device action lists are the recorded entries: the
device runner (simulator.generator.fleet.drive_device) plays them on the same absolute grid as a planned run,
so per-device order and inter-event gaps are those of the recording, divided by `speed`. requestUUIDs,
statuses, progress, codes and messages are published as recorded; `reboot` entries really disconnect the
device for `offline / speed` seconds (it reconnects and redoes the Astarte handshake); `property` entries set
device-owned properties. EventKey occurrences are recounted per device exactly like the planner does, so the
send log and the observer's arrival log join as in any run. One generator process:
a replay is a QA tool, not a load ramp (workers build their plan from a scenario and its seed).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from simulator.errors import ConfigError, ConfigErrors, UsageError
from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH, ActionKind, PlannedAction
from simulator.ids import is_device_id
from simulator.plan import FleetPlan, PlannedOperation, PlanStep
from simulator.replay.replay_file import (
    ReplayEntry,
    ReplayEvent,
    ReplayHeader,
    ReplayReboot,
    devices_in_order,
)
from simulator.scenario.model import FleetSpec, Scenario

__all__ = ["build_replay_plan", "read_devices_map", "replay_scenario"]

log = logging.getLogger("fleetsim.replay")


def _us(seconds: float, speed: float) -> int:
    return round(seconds / speed * 1e6)


def build_replay_plan(
    entries: Sequence[ReplayEntry],
    speed: float = 1.0,
    devices_map: Mapping[str, str] | None = None,
    source: str = "replay",
) -> FleetPlan:
    """The FleetPlan that plays `entries` (offsets from the earliest entry, divided by `speed`)."""
    if not speed > 0:
        raise UsageError(f"--speed: must be > 0, got {speed}")
    if not entries:
        raise UsageError(f"{source}: no entries to replay")
    mapping = dict(devices_map or {})
    recorded = devices_in_order(entries)
    ids = [mapping.get(d, d) for d in recorded]
    bad = [
        ConfigError(
            source,
            0,
            "device",
            f"{d!r} is not an Astarte device id (22 base64url characters); map it with --devices-map",
        )
        for d in ids
        if not is_device_id(d)
    ]
    if len(set(ids)) != len(ids):
        bad.append(
            ConfigError(source, 0, "device", "--devices-map sends two recorded devices to the same id")
        )
    if bad:
        raise ConfigErrors(bad)
    index = {d: i for i, d in enumerate(recorded)}
    t0 = min(e.at for e in entries)
    actions: list[list[PlannedAction]] = [[] for _ in recorded]
    seen: list[Counter[tuple[str, str, int]]] = [Counter() for _ in recorded]
    spans: dict[tuple[int, str], list[int]] = defaultdict(list)  # (device, uuid) -> offsets of its events
    finals: dict[tuple[int, str], str] = {}
    for entry in sorted(entries, key=lambda e: e.at):  # stable: file order at equal times
        dev = index[entry.device]
        offset = _us(entry.at - t0, speed)
        if isinstance(entry, ReplayEvent):
            triple = (entry.request_uuid, entry.status, entry.progress)
            occurrence = seen[dev][triple]
            seen[dev][triple] += 1
            value = {
                "requestUUID": entry.request_uuid,
                "status": entry.status,
                "statusProgress": entry.progress,
                "statusCode": entry.code,
                "message": entry.message,
            }
            actions[dev].append(
                PlannedAction(
                    dev,
                    offset,
                    ActionKind.PUBLISH,
                    OTA_EVENT_INTERFACE,
                    OTA_EVENT_PATH,
                    value,
                    occurrence=occurrence,
                )
            )
            spans[(dev, entry.request_uuid)].append(offset)
            if entry.status in ("Success", "Failure"):
                finals[(dev, entry.request_uuid)] = entry.status.lower()
        elif isinstance(entry, ReplayReboot):
            actions[dev].append(
                PlannedAction(
                    dev, offset, ActionKind.REBOOT, "", "", None, duration_us=_us(entry.offline, speed)
                )
            )
        else:
            actions[dev].append(
                PlannedAction(dev, offset, ActionKind.PROPERTY, entry.interface, entry.path, entry.value)
            )
    end = max((a.offset_us + a.duration_us for acts in actions for a in acts), default=0)
    operations: dict[int, list[PlannedOperation]] = defaultdict(list)
    for (dev, uuid), offs in spans.items():
        operations[dev].append(PlannedOperation(device=dev, uuid=uuid, start_us=min(offs), end_us=max(offs),
                                                outcome=finals.get((dev, uuid), "unfinished"), mix="replay"))
    # A recording is in memory already: one step per device holds all its recorded actions, handed over at
    # its first one (the cursor's look-ahead), with its operations in start order.
    steps = sorted(
        (PlanStep(device=dev, at_us=min([a.offset_us for a in acts] + [op.start_us for op in operations[dev]]),
                  operations=tuple(sorted(operations[dev], key=lambda op: op.start_us)), actions=tuple(acts))
         for dev, acts in enumerate(actions) if acts),
        key=lambda step: (step.at_us, step.device))

    def replayed() -> Iterator[PlanStep | None]:
        return iter(steps)

    return FleetPlan(seed=0, device_ids=tuple(ids), cut_us=end, source=replayed)


def read_devices_map(path: str) -> dict[str, str]:
    """`--devices-map FILE`: JSON object {recorded id: target id}, or lines `recorded=target` / CSV pairs."""
    import json

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: unreadable devices map: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
        ):
            raise UsageError(f"{path}: expected a JSON object of id -> id strings")
        return dict(doc)
    out: dict[str, str] = {}
    errors: list[ConfigError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        sep = "=" if "=" in line else ","
        parts = [p.strip() for p in line.split(sep)]
        if len(parts) != 2 or not all(parts):
            errors.append(ConfigError(path, number, "", "expected `recorded_id=target_id`"))
            continue
        out[parts[0]] = parts[1]
    if errors:
        raise ConfigErrors(errors)
    return out


def replay_scenario(
    header: ReplayHeader, plan: FleetPlan, *, name: str, transport: str, target: str
) -> Scenario:
    """The Scenario a replay runs under (no arrivals or lifecycles of its own: the plan is the recording)."""
    if transport not in ("lean", "sdk"):
        raise UsageError(f"--transport: expected lean or sdk, got {transport!r}")
    return Scenario(
        name=name,
        realm=header.realm or "fleetsim",
        seed=0,
        fleet=FleetSpec(devices=len(plan.device_ids)),
        time_scale=1.0,
        duration=plan.cut_us / 1e6,
        transport=transport,  # type: ignore[arg-type]
        target=target,
        mode="self",
        source=header.source,
        extra={"replay_note": header.note},
    )
