"""The arrival log a trigger observer keeps (AMQP or webhook): OTAEvents -> ArrivalRecords, thread-safe.

The EventKey occurrence is counted per (device, requestUUID, status, statusProgress) in arrival order, from 0,
exactly like the embedded collector (simulator.backend.collector) and the sender (simulator.lifecycle.plans
Occurrences), so the send log and this arrival log join (docs/design.md principle 7). `t_ms` is the trigger's event
timestamp, which for OTAEvent (explicit_timestamp) is the device's `t` (docs/protocol.md section 3); when a trigger
carries none, the BSON `t` is used.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH, EventKey, RecentKeyBook
from simulator.records import ArrivalRecord

__all__ = ["ArrivalBook"]


class ArrivalBook:
    """Arrivals in order, with per-reason counts of what was not an OTAEvent arrival."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._records: list[ArrivalRecord] = []
        self._released = 0  # arrivals dropped from the front (`release`): _records[0] is arrival number this
        # Numbered as the embedded collector numbers (issue 14): each device's last few operations only.
        self._occurrences = RecentKeyBook()
        self.ignored: Counter[str] = Counter()  # reason -> messages not turned into arrivals
        # The run fence (simulator.observers.fence): an OTAEvent whose timestamp (the device's `t`, epoch ms)
        # is earlier than this is another run's, ignored as `before_run` before it is numbered. None: no fence.
        self.not_before_ms: int | None = None

    def fence(self, not_before_ms: int) -> None:
        """From now on, OTAEvents stamped (device `t`) before `not_before_ms` are not this run's."""
        with self._lock:
            self.not_before_ms = not_before_ms

    def ignore_many(self, reason: str, count: int) -> None:
        with self._lock:
            self.ignored[reason] += count

    def ignore(self, reason: str) -> None:
        with self._lock:
            self.ignored[reason] += 1

    def add(
        self,
        *,
        device_id: str,
        interface: str,
        path: str,
        value: Any,
        t_ms: int | None,
        arrival: float,
        qos: int = 2,
    ) -> ArrivalRecord | None:
        """Record one data event if it is an OTAEvent object; None (and a count) otherwise."""
        if interface != OTA_EVENT_INTERFACE:
            self.ignore("other_interface")
            return None
        if path != OTA_EVENT_PATH or not isinstance(value, Mapping):
            self.ignore("not_an_ota_event_object")
            return None
        uuid, status, progress = value.get("requestUUID"), value.get("status"), value.get("statusProgress", 0)
        if (
            not isinstance(uuid, str)
            or not isinstance(status, str)
            or isinstance(progress, bool)
            or not isinstance(progress, int)
        ):
            self.ignore("malformed_ota_event")
            return None
        code = value.get("statusCode", "")
        with self._lock:
            if t_ms is not None and self.not_before_ms is not None and t_ms < self.not_before_ms:
                self.ignored["before_run"] += 1
                return None
            key: EventKey = self._occurrences.key(device_id, uuid, status, progress)
            record = ArrivalRecord(key, arrival, t_ms, qos, code if isinstance(code, str) else "")
            self._records.append(record)
            self._lock.notify_all()
        return record

    def count(self) -> int:
        """Arrivals recorded since the start (released ones included)."""
        with self._lock:
            return self._released + len(self._records)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until at least `count` arrivals are recorded or `timeout` seconds pass; True if reached."""
        with self._lock:
            return self._lock.wait_for(lambda: self._released + len(self._records) >= count, timeout)

    def records(self, since: int = 0) -> list[ArrivalRecord]:
        """Arrivals from number `since` on (numbers count from the start; released ones are gone)."""
        with self._lock:
            if since < self._released:
                raise ValueError(f"arrivals before {self._released} were released (forwarded); asked from {since}")
            return self._records[since - self._released:]

    def release(self, upto: int) -> None:
        """Forget the arrivals before number `upto`: their only reader has them (issue 14: a master that
        forwards its workers their arrivals holds what is not forwarded yet, not the run's whole log)."""
        with self._lock:
            drop = min(len(self._records), upto - self._released)
            if drop > 0:
                del self._records[:drop]
                self._released += drop
