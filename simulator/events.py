"""The vocabulary every layer shares: OTA statuses and codes, planned actions, event keys.

Status and code strings are those of io.edgehog.devicemanager.OTAEvent v0.1 (simulator/interfaces/) and of
edgehog-device-runtime src/ota/mod.rs (docs/protocol.md section 4).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from simulator.slot_setters import slot_setters

__all__ = [
    "KEPT_OPERATIONS",
    "OTA_EVENT_INTERFACE",
    "OTA_EVENT_PATH",
    "OTA_REQUEST_INTERFACE",
    "OTA_REQUEST_PATH",
    "ActionKind",
    "EventKey",
    "KeyBook",
    "OtaEvent",
    "OtaStatus",
    "OtaStatusCode",
    "PlannedAction",
    "RecentKeyBook",
    "Value",
]

OTA_EVENT_INTERFACE = "io.edgehog.devicemanager.OTAEvent"
OTA_EVENT_PATH = "/event"
OTA_REQUEST_INTERFACE = "io.edgehog.devicemanager.OTARequest"
OTA_REQUEST_PATH = "/request"

# A value an Astarte mapping can carry (the subset Edgehog interfaces use) or an object aggregate of them.
Value = str | int | float | bool | bytes | Mapping[str, object] | None


class OtaStatus(StrEnum):
    ACKNOWLEDGED = "Acknowledged"
    DOWNLOADING = "Downloading"
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    REBOOTING = "Rebooting"
    SUCCESS = "Success"
    ERROR = "Error"
    FAILURE = "Failure"


class OtaStatusCode(StrEnum):
    NONE = ""
    INVALID_REQUEST = "InvalidRequest"
    UPDATE_ALREADY_IN_PROGRESS = "UpdateAlreadyInProgress"
    NETWORK_ERROR = "NetworkError"
    IO_ERROR = "IOError"
    INTERNAL_ERROR = "InternalError"
    INVALID_BASE_IMAGE = "InvalidBaseImage"
    SYSTEM_ROLLBACK = "SystemRollback"
    CANCELED = "Canceled"


FINAL_STATUSES = frozenset({OtaStatus.SUCCESS, OtaStatus.FAILURE})


@dataclass(frozen=True, slots=True, init=False)
class OtaEvent:
    """One OTAEvent as the runtime publishes it (object aggregate on /event, all five leaves present)."""

    request_uuid: str
    status: OtaStatus
    progress: int = 0
    code: OtaStatusCode = OtaStatusCode.NONE
    message: str = ""

    def __init__(self, request_uuid: str, status: OtaStatus, progress: int = 0,
                 code: OtaStatusCode = OtaStatusCode.NONE, message: str = "") -> None:
        # The generated __init__'s, through the slots' setters (simulator.slot_setters: the planner builds ~26
        # events per operation); tests/unit/lifecycle/test_slot_inits.py holds it to the fields.
        _ev_uuid(self, request_uuid)
        _ev_status(self, status)
        _ev_progress(self, progress)
        _ev_code(self, code)
        _ev_message(self, message)

    def payload(self) -> dict[str, object]:
        """The object aggregate, leaf names as in the interface."""
        return {
            "requestUUID": self.request_uuid,
            "status": str(self.status),
            "statusProgress": self.progress,
            "statusCode": str(self.code),
            "message": self.message,
        }


_ev_uuid, _ev_status, _ev_progress, _ev_code, _ev_message = slot_setters(OtaEvent)


# (device_id, requestUUID, status, statusProgress, occurrence): occurrence counts, from 0, earlier events of
# the same device with the same (requestUUID, status, statusProgress) -- Rebooting is re-sent every 30 s and
# Error once per failed attempt, so the first four fields alone are not unique. Sender and collector compute
# occurrence the same way, so the send log and the arrival log join on this key (docs/design.md principle 7).
EventKey = tuple[str, str, str, int, int]


class KeyBook:
    """The one count of EventKey occurrences: how many earlier events had the same (device, requestUUID,
    status, statusProgress). The planner, the devices (campaign mode), the embedded collector and the trigger
    observers all number through it, so the send log and the arrival log join on the same keys."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, int], int] = {}

    def next(self, device: str, request_uuid: str, status: str, progress: int) -> int:
        """The occurrence of this event (0 the first time), counted."""
        base = (device, request_uuid, status, progress)
        n = self._seen.get(base, 0)
        self._seen[base] = n + 1
        return n

    def key(self, device: str, request_uuid: str, status: str, progress: int) -> EventKey:
        """The full EventKey of this event, counted."""
        return (device, request_uuid, status, progress, self.next(device, request_uuid, status, progress))


# Request UUIDs per device whose occurrence counts a RecentKeyBook keeps. An Edgehog device runs one OTA
# operation at a time and a backend re-sends only the one in progress, so 4 covers a retry of the last few;
# an event of an older operation numbers from 0 again (a late re-delivery of it is then the same key as the
# original: a duplicate to the join, which is what it is).
KEPT_OPERATIONS = 4


class RecentKeyBook(KeyBook):
    """KeyBook's numbering in memory bounded per device (issue 14): only its last KEPT_OPERATIONS request
    UUIDs are remembered. Used where events arrive for a whole run (the embedded collector, a campaign-mode
    device answering requests); the planner keeps KeyBook (a plan is numbered once, from the start)."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        super().__init__()
        # device -> request UUID (least recently opened first) -> (status, progress) -> count
        self._ops: dict[str, OrderedDict[str, dict[tuple[str, int], int]]] = {}

    def next(self, device: str, request_uuid: str, status: str, progress: int) -> int:
        ops = self._ops.get(device)
        if ops is None:
            ops = self._ops[device] = OrderedDict()
        counts = ops.get(request_uuid)
        if counts is None:
            counts = ops[request_uuid] = {}
            while len(ops) > KEPT_OPERATIONS:
                ops.popitem(last=False)
        n = counts.get((status, progress), 0)
        counts[(status, progress)] = n + 1
        return n


class ActionKind(StrEnum):
    PUBLISH = "publish"  # a datastream value (OTAEvent) at its intended time
    PROPERTY = "property"  # set a device-owned property (BaseImage, OSInfo, ...)
    REBOOT = "reboot"  # disconnect now, reconnect after `duration_us`


@dataclass(frozen=True, slots=True, init=False)
class PlannedAction:
    """One thing a device does at an intended time, as planned before the run (deterministic from the seed)."""

    device: int  # index of the device in the fleet (0-based); the id comes from simulator.ids
    offset_us: int  # intended time, microseconds of wall time from the run's start (after time_scale)
    kind: ActionKind
    interface: str
    path: str
    value: Value
    occurrence: int = 0  # see EventKey; 0 for non-OTAEvent actions
    duration_us: int = 0  # REBOOT: how long the device stays offline

    def __init__(self, device: int, offset_us: int, kind: ActionKind, interface: str, path: str, value: Value,
                 occurrence: int = 0, duration_us: int = 0) -> None:
        # The generated __init__'s, through the slots' setters (simulator.slot_setters: ~33 actions per planned
        # operation); tests/unit/lifecycle/test_slot_inits.py holds it to the fields.
        _pa_device(self, device)
        _pa_offset_us(self, offset_us)
        _pa_kind(self, kind)
        _pa_interface(self, interface)
        _pa_path(self, path)
        _pa_value(self, value)
        _pa_occurrence(self, occurrence)
        _pa_duration_us(self, duration_us)


(_pa_device, _pa_offset_us, _pa_kind, _pa_interface, _pa_path, _pa_value, _pa_occurrence,
 _pa_duration_us) = slot_setters(PlannedAction)
