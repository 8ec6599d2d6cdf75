"""Errors and losses the scenario caused on purpose: counted against the injected fault, not the backend.

An event is the fault's when its device is one the fault hit (all devices for broker and network faults)
and its send attempt (`sent`, else `intended`: a publish refused while offline never left) falls inside
the fault's window: [started - IN_FLIGHT_S, ended + recovery + RECOVERY_GRACE_S].
  IN_FLIGHT_S 1.0        a QoS 2 publish sent just before a disconnect is cut mid-flight; on loopback its
                         PUBCOMP takes milliseconds (ack p99.9 ~40 ms in error-storm), so 1 s covers it.
  recovery               the fault's own measurement of how long devices took to come back (the largest of
                         reconnect_s.max, all_back_s, reconnected_s), 0 when it has none.
  RECOVERY_GRACE_S 1.0   the first publish after a reconnect can still meet a half-open session.
Each event counts against the first fault whose window holds it, so nothing is counted twice.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from simulator.events import EventKey
from simulator.records import SendRecord

__all__ = [
    "IN_FLIGHT_S", "RECOVERY_GRACE_S", "Attributed", "FaultTotals", "FaultWindow", "attribute", "attribute_timed",
    "window"]

IN_FLIGHT_S = 1.0
RECOVERY_GRACE_S = 1.0


@dataclass(frozen=True)
class FaultWindow:
    """One injected fault as attribution sees it (wall seconds; `devices` None = every device)."""

    start: float
    end: float
    devices: frozenset[str] | None = None

    def holds(self, device: str, when: float) -> bool:
        return self.start <= when <= self.end and (self.devices is None or device in self.devices)


@dataclass(frozen=True)
class Attributed:
    """What one fault caused."""

    window: FaultWindow | None  # None: the fault never ran
    errors: int = 0
    lost: int = 0
    lost_reasons: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FaultTotals:
    """Per fault (in the order of the windows given) and in total."""

    per_fault: tuple[Attributed, ...] = ()

    @property
    def errors(self) -> int:
        return sum(a.errors for a in self.per_fault)

    @property
    def lost(self) -> int:
        return sum(a.lost for a in self.per_fault)


def window(started: float | None, ended: float | None, recovery_s: float,
           devices: frozenset[str] | None) -> FaultWindow | None:
    """The attribution window of a fault that ran (None when it never started)."""
    if started is None:
        return None
    end = ended if ended is not None else started
    return FaultWindow(started - IN_FLIGHT_S, end + max(0.0, recovery_s) + RECOVERY_GRACE_S, devices)


def attribute(windows: Sequence[FaultWindow | None], sends: Sequence[SendRecord],
              lost: Iterable[tuple[EventKey, str]]) -> FaultTotals:
    """Count each send error and each lost event (key, reason) against the first window that holds it."""
    by_key: dict[EventKey, SendRecord] = {}
    errors: list[tuple[str, float]] = []
    for rec in sends:
        by_key.setdefault(rec.key, rec)
        if rec.error is not None:
            errors.append((rec.key[0], rec.sent if rec.sent is not None else rec.intended))
    timed: list[tuple[EventKey, str, float]] = []
    for key, reason in lost:
        found = by_key.get(key)
        if found is not None:
            timed.append((key, reason, found.sent if found.sent is not None else found.intended))
    return attribute_timed(windows, errors, timed)


def attribute_timed(windows: Sequence[FaultWindow | None], errors: Iterable[tuple[str, float]],
                    lost: Iterable[tuple[EventKey, str, float]]) -> FaultTotals:
    """As `attribute`, from what the run's books keep: (device, when) per send error and (key, reason, when)
    per lost event, `when` being the send time, else the intended one (wall s)."""
    errors_n = [0] * len(windows)
    lost_n = [0] * len(windows)
    reasons: list[dict[str, int]] = [{} for _ in windows]

    def which(device: str, when: float) -> int | None:
        for i, w in enumerate(windows):
            if w is not None and w.holds(device, when):
                return i
        return None

    for device, when in errors:
        i = which(device, when)
        if i is not None:
            errors_n[i] += 1
    for key, reason, when in lost:
        i = which(key[0], when)
        if i is not None:
            lost_n[i] += 1
            reasons[i][reason] = reasons[i].get(reason, 0) + 1
    return FaultTotals(tuple(Attributed(w, errors_n[i], lost_n[i], reasons[i]) for i, w in enumerate(windows)))
