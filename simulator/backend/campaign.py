"""An Edgehog-like OTA campaign: the spec, the pure rollout state machine, and its report.

Rules are Edgehog's lazy batch executor (edgehog backend/lib/edgehog/campaigns/executors/lazy/lazy_batch.ex
and lazy/core.ex; docs/protocol.md section 5):
- at most `max_in_progress` operations at once; a slot frees when an operation reaches a final state;
- `Success` and `Failure` are final, `Error` is recoverable (the operation stays in progress);
- each request arms a retry timer of `request_timeout_s` (Edgehog: 300 s, minimum 30); any OTAEvent of the
  operation cancels it (no timeout once acknowledged); on expiry the *same* request (same uuid) is re-sent
  while `retries < request_retries` (3), then the operation is marked timed out, which counts as a failure;
- `failed / targets * 100 > max_failure_percentage` => the campaign fails: no new operations start, the ones
  in progress are still followed to the end;
- a target whose BaseImage /version already equals `target_version` is marked successful without a request
  (Edgehog's `:already_in_desired_state`).
The I/O side (publishing OTARequests, feeding it OTAEvents from the collector) is
simulator.backend.campaign_runner.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import ConfigError, ConfigErrors
from simulator.events import OTA_REQUEST_INTERFACE, OTA_REQUEST_PATH

__all__ = [
    "EDGEHOG_MIN_TIMEOUT_S",
    "CampaignSpec",
    "CampaignState",
    "Operation",
    "OtaRequest",
]

EDGEHOG_MIN_TIMEOUT_S = 30.0  # Edgehog rejects request_timeout_seconds below 30

# Operation states.
PENDING, IN_PROGRESS, SUCCESS, FAILURE, TIMED_OUT, ALREADY_UPDATED, CANCELED = (
    "pending", "in_progress", "success", "failure", "timed_out", "already_updated", "canceled")


@dataclass(frozen=True)
class CampaignSpec:
    """What to roll out, to whom, how fast. Times in seconds; percentages 0..100."""

    devices: list[str]
    url: str = "https://updates.fleetsim.invalid/bundle.raucb"
    uuid_seed: int = 0  # request uuids are derived from (seed, device): same spec => same uuids
    max_in_progress: int = 10
    request_timeout_s: float = 300.0
    request_retries: int = 3
    max_failure_percentage: float = 50.0
    target_version: str | None = None
    allow_short_timeout: bool = False  # tests only: permit request_timeout_s < 30

    def validate(self) -> list[str]:
        """Problems as `field: message` strings (empty when valid)."""
        errors: list[str] = []
        if not self.devices:
            errors.append("devices: at least one device is required")
        elif len(set(self.devices)) != len(self.devices):
            errors.append("devices: duplicate device ids")
        if self.max_in_progress < 1:
            errors.append("max_in_progress: must be >= 1")
        if self.request_retries < 0:
            errors.append("request_retries: must be >= 0")
        if not 0 <= self.max_failure_percentage <= 100:
            errors.append("max_failure_percentage: must be within 0..100")
        if self.request_timeout_s <= 0 or (
                self.request_timeout_s < EDGEHOG_MIN_TIMEOUT_S and not self.allow_short_timeout):
            errors.append(f"request_timeout_s: must be > 0 and >= {EDGEHOG_MIN_TIMEOUT_S:g} (Edgehog's "
                          "minimum) unless allow_short_timeout is set")
        return errors

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<campaign>") -> CampaignSpec:
        """Build from JSON-like data; raises ConfigErrors naming every bad field."""
        types: dict[str, tuple[type, ...]] = {
            "devices": (list,), "url": (str,), "uuid_seed": (int,), "max_in_progress": (int,),
            "request_timeout_s": (int, float), "request_retries": (int,),
            "max_failure_percentage": (int, float), "target_version": (str, type(None)),
            "allow_short_timeout": (bool,),
        }
        errors: list[ConfigError] = []
        if not isinstance(data, Mapping):
            raise ConfigErrors([ConfigError(source, 0, "", "campaign spec must be a JSON object")])
        for key, value in data.items():
            if key not in types:
                errors.append(ConfigError(source, 0, key, "unknown field"))
            elif not isinstance(value, types[key]) or (isinstance(value, bool) and bool not in types[key]):
                errors.append(ConfigError(source, 0, key, f"wrong type {type(value).__name__}"))
        if "devices" not in data:
            errors.append(ConfigError(source, 0, "devices", "required"))
        elif isinstance(data["devices"], list) and not all(isinstance(d, str) for d in data["devices"]):
            errors.append(ConfigError(source, 0, "devices", "must be a list of device id strings"))
        if errors:
            raise ConfigErrors(errors)
        values: dict[str, Any] = {k: (float(v) if types[k] == (int, float) else v) for k, v in data.items()}
        spec = cls(**values)
        problems = spec.validate()
        if problems:
            raise ConfigErrors([ConfigError(source, 0, *p.split(": ", 1)) for p in problems])
        return spec

    def request_uuid(self, device: str) -> str:
        """A version-4-shaped UUID derived from (uuid_seed, device): deterministic, unique per device."""
        digest = hashlib.sha256(f"{self.uuid_seed}/{device}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass(frozen=True)
class OtaRequest:
    """One io.edgehog.devicemanager.OTARequest v1.0 object on /request (server-owned, no reliability => QoS 0,
    no explicit timestamp => no `t`; docs/protocol.md section 5)."""

    device: str
    operation: str  # "Update" | "Cancel"
    url: str
    uuid: str

    QOS = 0

    def topic(self, realm: str) -> str:
        return f"{realm}/{self.device}/{OTA_REQUEST_INTERFACE}{OTA_REQUEST_PATH}"

    def value(self) -> dict[str, str]:
        return {"operation": self.operation, "url": self.url, "uuid": self.uuid}


@dataclass(slots=True)
class Operation:
    """One target's OTA operation. Times are the state machine's clock (seconds, monotonic)."""

    device: str
    uuid: str
    state: str = PENDING
    first_sent: float | None = None
    acked_at: float | None = None  # first OTAEvent of this operation
    finished_at: float | None = None
    deadline: float | None = None  # retry timer; None = not armed
    retries: int = 0
    events: int = 0
    last_status: str | None = None
    last_code: str | None = None
    cancel_sent: bool = False

    def as_dict(self) -> dict[str, object]:
        sent = self.first_sent
        ack = None if self.acked_at is None or sent is None else self.acked_at - sent
        fin = None if self.finished_at is None or sent is None else self.finished_at - sent
        return {"device": self.device, "uuid": self.uuid, "state": self.state,
                "last_status": self.last_status, "status_code": self.last_code,
                "retries": self.retries, "events": self.events,
                "time_to_ack_s": ack, "time_to_final_s": fin}


def _summary(values: list[float]) -> dict[str, float | int | None]:
    """count/mean/p50/p90/p99/max, nearest-rank percentiles (seconds)."""
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, -(-int(p * len(ordered)) // 100) - 1))]

    return {"count": len(ordered), "mean": sum(ordered) / len(ordered), "p50": rank(50), "p90": rank(90),
            "p99": rank(99), "max": ordered[-1]}


@dataclass
class CampaignState:
    """The rollout, driven by `tick(now)` and `on_event(...)`; both return the OTARequests to publish now.

    `version_of(device)` gives the device's current BaseImage /version (None if unknown), read when the
    device's turn comes, as Edgehog does when it fetches the next target. Not thread-safe: one caller.
    """

    spec: CampaignSpec
    version_of: Callable[[str], str | None] = field(default=lambda _device: None)
    status: str = "idle"  # idle -> in_progress -> success | failure
    started_at: float | None = None
    finished_at: float | None = None
    failed: int = 0
    retries_sent: int = 0
    unmatched_events: int = 0  # OTAEvents whose uuid is not the device's operation
    late_events: int = 0  # events for an operation already final (or timed out)

    def __post_init__(self) -> None:
        problems = self.spec.validate()
        if problems:
            raise ValueError("; ".join(problems))
        self.operations = {d: Operation(d, self.spec.request_uuid(d)) for d in self.spec.devices}
        self._queue = list(reversed(self.spec.devices))  # pop() from the end = the spec's order
        self._in_progress: set[str] = set()

    # -- driving ---------------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[OtaRequest]:
        """Start the campaign (first call), fire expired retry timers, fill free slots."""
        out: list[OtaRequest] = []
        if self.status == "idle":
            self.status, self.started_at = "in_progress", now
        for device in sorted(self._in_progress):
            op = self.operations[device]
            if op.deadline is None or op.deadline > now:
                continue
            if op.retries < self.spec.request_retries:
                op.retries += 1
                self.retries_sent += 1
                op.deadline = now + self.spec.request_timeout_s
                out.append(OtaRequest(device, "Update", self.spec.url, op.uuid))
            else:
                self._finish(op, TIMED_OUT, now)
        out.extend(self._fill(now))
        return out

    def on_event(self, device: str, payload: Mapping[str, Any], now: float) -> list[OtaRequest]:
        """An OTAEvent object from `device` (leaves as in the interface)."""
        op = self.operations.get(device)
        if op is None or payload.get("requestUUID") != op.uuid:
            self.unmatched_events += 1
            return []
        if op.state != IN_PROGRESS:
            self.late_events += 1
            return []
        status = str(payload.get("status", ""))
        op.events += 1
        op.last_status, op.last_code = status, str(payload.get("statusCode", ""))
        op.deadline = None  # any OTAEvent cancels the retry timer
        if op.acked_at is None:
            op.acked_at = now
        if status == "Success":
            self._finish(op, SUCCESS, now)
        elif status == "Failure":
            self._finish(op, FAILURE, now)
        return self._fill(now)

    def cancel(self, device: str, now: float) -> list[OtaRequest]:
        """Cancel one target: not started yet => never started; in progress => a Cancel request (the device
        answers Failure/Canceled if it still can, docs/protocol.md section 4); final => nothing."""
        op = self.operations.get(device)
        if op is None:
            return []
        if op.state == PENDING:
            self._queue.remove(device)
            op.state, op.finished_at = CANCELED, now
            return self._fill(now)
        if op.state == IN_PROGRESS:
            op.cancel_sent = True
            return [OtaRequest(device, "Cancel", "", op.uuid)]
        return []

    @property
    def in_progress(self) -> int:
        return len(self._in_progress)

    @property
    def finished(self) -> bool:
        """Nothing left to start (or the campaign failed) and nothing in progress."""
        return self.status in ("success", "failure") and not self._in_progress

    def next_deadline(self) -> float | None:
        deadlines = [d for dev in self._in_progress if (d := self.operations[dev].deadline) is not None]
        return min(deadlines) if deadlines else None

    # -- internals -----------------------------------------------------------------------------------------

    def _finish(self, op: Operation, state: str, now: float) -> None:
        op.state, op.finished_at, op.deadline = state, now, None
        self._in_progress.discard(op.device)
        if state in (FAILURE, TIMED_OUT):
            self.failed += 1
            if self.status == "in_progress" and (
                    self.failed / len(self.spec.devices) * 100 > self.spec.max_failure_percentage):
                self.status = "failure"
        self._check_done(now)

    def _fill(self, now: float) -> list[OtaRequest]:
        out: list[OtaRequest] = []
        spec = self.spec
        while self.status == "in_progress" and self._queue and len(self._in_progress) < spec.max_in_progress:
            op = self.operations[self._queue.pop()]
            if spec.target_version is not None and self.version_of(op.device) == spec.target_version:
                op.state, op.finished_at = ALREADY_UPDATED, now
                continue
            op.state, op.first_sent, op.deadline = IN_PROGRESS, now, now + self.spec.request_timeout_s
            self._in_progress.add(op.device)
            out.append(OtaRequest(op.device, "Update", self.spec.url, op.uuid))
        self._check_done(now)
        return out

    def _check_done(self, now: float) -> None:
        if self.status == "in_progress" and not self._queue and not self._in_progress:
            self.status = "success"
        if self.finished and self.finished_at is None:
            self.finished_at = now

    # -- report --------------------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Per-operation times (from the first Update sent), final status/code distribution, stuck ones."""
        ops = list(self.operations.values())
        acks = [o.acked_at - o.first_sent for o in ops if o.acked_at is not None and o.first_sent is not None]
        finals = [o.finished_at - o.first_sent for o in ops
                  if o.finished_at is not None and o.first_sent is not None and o.state in (SUCCESS, FAILURE)]
        final_codes = Counter(o.last_code or "" for o in ops if o.state == FAILURE)
        return {
            "status": self.status,
            "finished": self.finished,
            "targets": len(ops),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "operations_by_state": dict(Counter(o.state for o in ops)),
            "final_status": dict(Counter(o.last_status for o in ops if o.state in (SUCCESS, FAILURE))),
            "failure_codes": dict(final_codes),
            "time_to_ack_s": _summary(acks),
            "time_to_final_s": _summary(finals),
            "stuck_in_progress": sorted(self._in_progress),
            "failed": self.failed,
            "retries_sent": self.retries_sent,
            "unmatched_events": self.unmatched_events,
            "late_events": self.late_events,
            "operations": [o.as_dict() for o in ops],
        }
