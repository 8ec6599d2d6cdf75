"""State convergence: each operation's final status as the backend recorded it vs. what the device last sent.

A backend that follows OTAEvents without a terminal-state guard (Edgehog's OTA operation handler updates the
status with whatever event arrives last) can end with an operation the device finished as Success recorded
as Downloading, if a late event overtakes the final one. This module compares the two views, pure:
- converged: same status (and same status code when both have one);
- diverged: both views exist and differ -> listed with both states;
- never_reached: the backend has an operation no device was sent (lost request, or device offline);
- unknown_to_backend: a device answered a uuid the backend does not list.
Statuses and codes are compared case- and underscore-insensitively: Edgehog's GraphQL enums are
SCREAMING_SNAKE (`SUCCESS`, `INVALID_BASE_IMAGE`), the device sends `Success` / `InvalidBaseImage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = ["BackendOperation", "Convergence", "DeviceView", "Divergence", "converge", "same_state"]

MAX_LISTED = 200  # diverged rows kept in the summary (the count is always exact)
NEVER_LISTED = 20  # never-reached examples kept


class DeviceView(Protocol):
    """What the device last sent for one operation (simulator.metrics.campaign.OperationRecord)."""

    @property
    def device(self) -> str: ...
    @property
    def uuid(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def last_status(self) -> str: ...
    @property
    def last_code(self) -> str: ...


@dataclass(frozen=True)
class BackendOperation:
    """One operation as the backend recorded it at the end of the run."""

    device: str
    uuid: str
    status: str  # e.g. "Success", "Failure", "Downloading", "Pending" (as the backend spells it)
    status_code: str = ""
    timed_out: bool = False  # the backend gave up waiting for the device (retries exhausted)


@dataclass(frozen=True)
class Divergence:
    device: str
    uuid: str
    backend_status: str
    backend_code: str
    device_status: str
    device_code: str


@dataclass(frozen=True)
class Convergence:
    checked: int  # operations both sides know
    converged: int
    diverged_count: int
    diverged: tuple[Divergence, ...]  # at most MAX_LISTED
    never_reached: int
    never_reached_examples: tuple[str, ...]  # "device/uuid", at most 20
    unknown_to_backend: int

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["diverged"] = [asdict(d) for d in self.diverged]
        doc["never_reached_examples"] = list(self.never_reached_examples)
        return doc


def _norm(text: str | None) -> str:
    return (text or "").replace("_", "").lower()


def same_state(backend_status: str, backend_code: str, device_status: str, device_code: str) -> bool:
    if _norm(backend_status) != _norm(device_status):
        return False
    return not backend_code or not device_code or _norm(backend_code) == _norm(device_code)


def converge(records: Iterable[DeviceView], backend: Sequence[BackendOperation]) -> Convergence:
    """Compare the two views. `records` is read once, as a stream (it may be a spool on disk, issue 14): what
    is kept is the device's last state per operation the backend lists (the backend's view is held whole
    already) and a count of the others. Each (device, uuid) once (a spool folds an operation's pieces); one
    the backend lists and given twice counts as its last record."""
    listed = {(b.device, b.uuid) for b in backend}
    device_state: dict[tuple[str, str], tuple[str, str]] = {}
    unknown = 0
    for r in records:
        key = (r.device, r.uuid)
        if key in listed:
            device_state[key] = (r.last_status, r.last_code)
        elif r.operation == "Update":
            unknown += 1
    diverged: list[Divergence] = []  # the first MAX_LISTED in (device, uuid) order; the count is exact
    diverged_count = converged = never_count = 0
    never: list[str] = []
    for op in sorted(backend, key=lambda b: (b.device, b.uuid)):
        state = device_state.get((op.device, op.uuid))
        if state is None:
            never_count += 1
            if len(never) < NEVER_LISTED:
                never.append(f"{op.device}/{op.uuid}")
        elif same_state(op.status, op.status_code, state[0], state[1]):
            converged += 1
        else:
            diverged_count += 1
            if len(diverged) < MAX_LISTED:
                diverged.append(Divergence(op.device, op.uuid, op.status, op.status_code, state[0], state[1]))
    return Convergence(checked=len(device_state), converged=converged, diverged_count=diverged_count,
                       diverged=tuple(diverged), never_reached=never_count, never_reached_examples=tuple(never),
                       unknown_to_backend=unknown)
