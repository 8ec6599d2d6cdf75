"""Turn one OTA operation (random or scripted) into timed PlannedActions for one device.

Random lifecycles: draws.draw_operation -> draws.operation_inputs -> OtaMachine -> `input_actions`, so the
planned OTAEvents are exactly what the machine (i.e. the runtime) publishes. Scripted lifecycles: each step is
published as written at its cumulative delay (script_check.py has already refused illegal scripts).

After a reboot the runtime republishes OSInfo and BaseImage (docs/protocol.md section 4): the new image on Success,
the old one on rollback. Paths from simulator/interfaces/io.edgehog.devicemanager.{BaseImage,OSInfo}.json.
All offsets are integer microseconds of wall time from the run's start; device seconds are divided by
time_scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.events import (
    OTA_EVENT_INTERFACE,
    OTA_EVENT_PATH,
    ActionKind,
    KeyBook,
    OtaEvent,
    OtaStatus,
    OtaStatusCode,
    PlannedAction,
)
from simulator.lifecycle.draws import draw_operation, operation_inputs
from simulator.lifecycle.inputs import BootedNew, BootedOld, Input, PoweredOff
from simulator.lifecycle.machine import OtaMachine
from simulator.scenario.model import RandomLifecycle, ScriptedLifecycle

__all__ = [
    "BASE_IMAGE_INTERFACE",
    "OS_INFO_INTERFACE",
    "Firmware",
    "OperationPlan",
    "firmware_properties",
    "input_actions",
    "plan_operation",
    "plan_random",
    "plan_scripted",
]

BASE_IMAGE_INTERFACE = "io.edgehog.devicemanager.BaseImage"
OS_INFO_INTERFACE = "io.edgehog.devicemanager.OSInfo"


@dataclass(frozen=True)
class Firmware:
    """The installed base image (BaseImage /name /version /buildId; OSInfo /osName /osVersion)."""

    name: str
    version: str
    build_id: str


def firmware_properties(device: int, offset_us: int, fw: Firmware) -> list[PlannedAction]:
    """PROPERTY actions republishing OSInfo and BaseImage for `fw`."""
    values = (
        (OS_INFO_INTERFACE, "/osName", fw.name),
        (OS_INFO_INTERFACE, "/osVersion", fw.version),
        (BASE_IMAGE_INTERFACE, "/name", fw.name),
        (BASE_IMAGE_INTERFACE, "/version", fw.version),
        (BASE_IMAGE_INTERFACE, "/buildId", fw.build_id),
    )
    return [PlannedAction(device, offset_us, ActionKind.PROPERTY, iface, path, value)
            for iface, path, value in values]


def _publish(device: int, offset_us: int, event: OtaEvent, occurrences: KeyBook) -> PlannedAction:
    occurrence = occurrences.next(str(device), event.request_uuid, str(event.status), event.progress)
    return PlannedAction(device, offset_us, ActionKind.PUBLISH, OTA_EVENT_INTERFACE, OTA_EVENT_PATH,
                         event.payload(), occurrence=occurrence)


def _publish_all(actions: list[PlannedAction], device: int, offset_us: int, events: list[OtaEvent],
                 occurrences: KeyBook) -> None:
    """`_publish` of each event, appended to `actions`: one loop, the device's key made once (the planner runs
    this for each of an operation's ~33 inputs; issue 16, bench/plan_cost.py)."""
    key = str(device)
    count = occurrences.next
    for event in events:
        actions.append(PlannedAction(device, offset_us, ActionKind.PUBLISH, OTA_EVENT_INTERFACE, OTA_EVENT_PATH,
                                     event.payload(), count(key, event.request_uuid, str(event.status),
                                                            event.progress)))


def _reboot(device: int, offset_us: int, duration_us: int) -> PlannedAction:
    return PlannedAction(device, offset_us, ActionKind.REBOOT, "", "", None, duration_us=duration_us)


def input_actions(device: int, offset_us: int, inp: Input, events: list[OtaEvent], occurrences: KeyBook,
                  old: Firmware, new: Firmware, reboot_us: int = 0) -> list[PlannedAction]:
    """What a device does when `inp` happens at `offset_us` and the machine answered `events`.

    PoweredOff -> REBOOT for `reboot_us`; BootedNew/BootedOld -> the new/old image's properties first (the
    runtime's startup telemetry), then the final event; otherwise one PUBLISH per event.
    """
    if isinstance(inp, PoweredOff):
        actions = [_reboot(device, offset_us, reboot_us)]
    elif isinstance(inp, BootedNew):
        actions = firmware_properties(device, offset_us, new)
    elif isinstance(inp, BootedOld):
        actions = firmware_properties(device, offset_us, old)
    else:
        actions = []
    if events:
        _publish_all(actions, device, offset_us, events, occurrences)
    return actions


@dataclass(frozen=True)
class OperationPlan:
    """One operation's actions, its end (last action, reboot included) and the image installed afterwards."""

    uuid: str
    actions: tuple[PlannedAction, ...]
    end_us: int
    firmware_after: Firmware
    outcome: str  # a RandomLifecycle outcome, or "scripted"


def _end(actions: list[PlannedAction], start_us: int) -> int:
    return max((a.offset_us + a.duration_us for a in actions), default=start_us)


def plan_random(device: int, spec: RandomLifecycle, rng: np.random.Generator, uuid: str, start_us: int,
                time_scale: float, old: Firmware, new: Firmware,
                occurrences: KeyBook | None = None) -> OperationPlan:
    """Draw one random operation and run its inputs through a fresh machine."""
    occurrences = occurrences if occurrences is not None else KeyBook()
    draw = draw_operation(spec, rng)
    timed = operation_inputs(draw, uuid, start_us, time_scale)
    machine = OtaMachine(streaming=spec.streaming, progress_step=spec.progress_step)
    actions: list[PlannedAction] = []
    after = old
    handle = machine.handle
    # input_actions per input, inlined: most inputs are progress steps answered by one event or none, and the
    # call, its list and a generator per input cost more than the actions themselves (issue 16).
    for i, (offset, inp) in enumerate(timed):
        events = handle(inp)
        if isinstance(inp, PoweredOff):
            actions.append(_reboot(device, offset, timed[i + 1][0] - offset))
        elif isinstance(inp, BootedNew):
            actions += firmware_properties(device, offset, new)
        elif isinstance(inp, BootedOld):
            actions += firmware_properties(device, offset, old)
        if events:
            _publish_all(actions, device, offset, events, occurrences)
            for e in events:
                if e.status is OtaStatus.SUCCESS and e.request_uuid == uuid:
                    after = new
    return OperationPlan(uuid, tuple(actions), _end(actions, start_us), after, draw.outcome)


def plan_scripted(device: int, spec: ScriptedLifecycle, uuid: str, start_us: int, time_scale: float,
                  old: Firmware, new: Firmware, occurrences: KeyBook | None = None) -> OperationPlan:
    """Publish each step at its cumulative delay. The last Rebooting step is followed by a real reboot when
    the script goes on with Success or Failure+SystemRollback (or ends there); the next step's delay then
    counts from the reconnection, and the image properties are republished first."""
    occurrences = occurrences if occurrences is not None else KeyBook()
    steps = spec.steps
    statuses = [s.status for s in steps]
    last_reboot = max((i for i, s in enumerate(statuses) if s == OtaStatus.REBOOTING), default=-1)
    reboots = last_reboot >= 0 and (
        last_reboot == len(steps) - 1
        or steps[last_reboot + 1].status == OtaStatus.SUCCESS
        or steps[last_reboot + 1].code == OtaStatusCode.SYSTEM_ROLLBACK
    )
    actions: list[PlannedAction] = []
    after = old
    t = 0.0
    for i, step in enumerate(steps):
        t += step.delay
        offset = start_us + round(t * 1e6 / time_scale)
        if i == last_reboot + 1 and reboots:
            fw = new if step.status == OtaStatus.SUCCESS else old
            actions += firmware_properties(device, offset, fw)
            after = fw
        event = OtaEvent(uuid, OtaStatus(step.status), step.progress, OtaStatusCode(step.code), step.message)
        actions.append(_publish(device, offset, event, occurrences))
        if i == last_reboot and reboots:
            reboot_us = round(spec.reboot_duration * 1e6 / time_scale)
            actions.append(_reboot(device, offset, reboot_us))
            t += spec.reboot_duration
    return OperationPlan(uuid, tuple(actions), _end(actions, start_us), after, "scripted")


def plan_operation(device: int, spec: RandomLifecycle | ScriptedLifecycle, rng: np.random.Generator,
                   uuid: str, start_us: int, time_scale: float, old: Firmware, new: Firmware,
                   occurrences: KeyBook | None = None) -> OperationPlan:
    """Plan one operation of either kind (scripted lifecycles draw nothing from `rng`)."""
    if isinstance(spec, ScriptedLifecycle):
        return plan_scripted(device, spec, uuid, start_us, time_scale, old, new, occurrences)
    return plan_random(device, spec, rng, uuid, start_us, time_scale, old, new, occurrences)
