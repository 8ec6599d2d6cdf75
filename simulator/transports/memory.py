"""An in-memory Transport, for unit tests of the core only (integration tests use real brokers).

`MemoryBroker` is the hub: it hands out `MemoryTransport`s (it is a TransportFactory), keeps every message
they publish (topic, QoS, payload as a dict), and delivers server-owned data (OTARequest) to connected
devices. Each transport acks immediately (default) or when told to, and can be told to fail connects and
publishes. Topics and QoS follow Astarte MQTT v1 (docs/protocol.md section 1): `<realm>/<device>/<iface><path>`;
properties QoS 2; datastreams by the reliability of the interface's first mapping (OTAEvent is `unique`: 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from simulator.clock import Clock, MonotonicClock
from simulator.events import Value
from simulator.transports.base import AckCallback, DataCallback, OnboardingTimes, PublishError

__all__ = ["MemoryBroker", "MemoryTransport", "Published", "interface_qos"]

_INTERFACES = Path(__file__).resolve().parent.parent / "interfaces"
_RELIABILITY_QOS = {"unreliable": 0, "guaranteed": 1, "unique": 2}


@cache
def interface_qos(interface: str) -> int:
    """QoS of a publish on `interface` (bundled JSON); 2 for properties and for unknown interfaces."""
    path = _INTERFACES / f"{interface}.json"
    if not path.is_file():
        return 2
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("type") == "properties":
        return 2
    mappings = doc.get("mappings") or [{}]
    return _RELIABILITY_QOS.get(str(mappings[0].get("reliability", "unreliable")), 0)


@dataclass
class Published:
    """One message a device sent (payload None = an unset property)."""

    device_id: str
    topic: str
    qos: int
    interface: str
    path: str
    payload: dict[str, object] | None
    property: bool
    at: float  # monotonic seconds


@dataclass
class _Pending:
    callback: AckCallback
    message: Published


@dataclass
class MemoryBroker:
    realm: str = "fleetsim"
    clock: Clock = field(default_factory=MonotonicClock)
    auto_ack: bool = True
    messages: list[Published] = field(default_factory=list)
    transports: dict[str, MemoryTransport] = field(default_factory=dict)

    def __call__(self, device_id: str, interfaces: Mapping[str, object] | None = None) -> MemoryTransport:
        """TransportFactory: one transport per device id (the same object when asked twice)."""
        if device_id not in self.transports:
            self.transports[device_id] = MemoryTransport(device_id, self, auto_ack=self.auto_ack)
        return self.transports[device_id]

    def published_by(self, device_id: str) -> list[Published]:
        return [m for m in self.messages if m.device_id == device_id]

    def deliver(self, device_id: str, interface: str, path: str, value: Value) -> bool:
        """Server-owned data to one device. OTARequest has QoS 0 and no session: an offline device loses it
        (docs/protocol.md section 5). Returns whether the device's callback got it."""
        transport = self.transports.get(device_id)
        return transport is not None and transport.inject(interface, path, value)


class MemoryTransport:
    """One device's connection to a MemoryBroker (its own private broker when none is given)."""

    def __init__(self, device_id: str, broker: MemoryBroker | None = None, *, auto_ack: bool = True) -> None:
        self.device_id = device_id
        self.broker = broker if broker is not None else MemoryBroker()
        self.auto_ack = auto_ack
        self.connects = 0  # successful connect() calls (each one redoes the handshake: no session kept)
        self.disconnects = 0
        self._connected = False
        self._callback: DataCallback | None = None
        self._pending: list[_Pending] = []
        self._fail_connects = 0
        self._fail_publishes: list[str] = []

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending_acks(self) -> int:
        return len(self._pending)

    def fail_connects(self, count: int = 1) -> None:
        """The next `count` connect() calls raise ConnectionError."""
        self._fail_connects += count

    def fail_publishes(self, reason: str = "queue_full", count: int = 1) -> None:
        """The next `count` publish()/set_property() calls raise PublishError(reason)."""
        self._fail_publishes += [reason] * count

    def connect(self) -> OnboardingTimes:
        if self._fail_connects > 0:
            self._fail_connects -= 1
            raise ConnectionError(f"{self.device_id}: connection refused (injected)")
        self._connected = True
        self.connects += 1
        return OnboardingTimes(connect=0.0, handshake=0.0, session_present=False)

    def _send(self, interface: str, path: str, payload: dict[str, object] | None, is_property: bool,
              on_ack: AckCallback | None) -> None:
        if not self._connected:
            raise PublishError("disconnected", self.device_id)
        if self._fail_publishes:
            raise PublishError(self._fail_publishes.pop(0), "injected")
        qos = 2 if is_property else interface_qos(interface)
        message = Published(self.device_id, f"{self.broker.realm}/{self.device_id}/{interface}{path}", qos,
                            interface, path, payload, is_property, self.broker.clock.monotonic())
        self.broker.messages.append(message)
        if on_ack is None:
            return
        if self.auto_ack:
            on_ack(self.broker.clock.monotonic(), None)
        else:
            self._pending.append(_Pending(on_ack, message))

    def publish(self, interface: str, path: str, value: Value, timestamp_ms: int | None,
                on_ack: AckCallback | None = None) -> None:
        payload: dict[str, object] = {"v": value}
        if timestamp_ms is not None:
            payload["t"] = timestamp_ms
        self._send(interface, path, payload, False, on_ack)

    def set_property(self, interface: str, path: str, value: Value) -> None:
        self._send(interface, path, None if value is None else {"v": value}, True, None)

    def on_data(self, callback: DataCallback) -> None:
        self._callback = callback

    def inject(self, interface: str, path: str, value: Value) -> bool:
        """Server data for this device; delivered only while connected."""
        if not self._connected or self._callback is None:
            return False
        self._callback(interface, path, value)
        return True

    def ack(self, count: int | None = None, error: str | None = None) -> int:
        """Ack the oldest `count` (default all) pending publishes, with `error` or None; returns how many."""
        n = len(self._pending) if count is None else min(count, len(self._pending))
        done, self._pending = self._pending[:n], self._pending[n:]
        now = self.broker.clock.monotonic()
        for pending in done:
            pending.callback(now, error)
        return n

    def disconnect(self) -> None:
        """Idempotent. Publishes still waiting for their ack fail with "disconnected"."""
        if self._connected:
            self.disconnects += 1
        self._connected = False
        self.ack(error="disconnected")
