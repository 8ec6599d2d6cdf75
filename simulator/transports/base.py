"""The one protocol between a virtual device and the outside world (docs/design.md principle 8).

Implementations: `memory` (unit tests of the core), `lean` (gevent-cooperative paho, one I/O path for many
devices), `sdk` (one unmodified astarte-device-sdk 0.14.0 DeviceMqtt per device).

Calls are made from gevent greenlets (inside Locust) or plain threads; `connect` blocks the calling greenlet
only. Ack callbacks run on the transport's I/O path and must be quick (record, never block).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from simulator.events import Value
from simulator.records import OnboardingTimes  # part of the Transport protocol; defined with the records

__all__ = [
    "AckCallback",
    "DataCallback",
    "Endpoint",
    "OnboardingTimes",
    "PublishError",
    "Transport",
    "TransportFactory",
]


class PublishError(Exception):
    """A publish that did not leave the device (disconnected, validation failed, queue full)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason  # short machine-readable: "disconnected", "validation", "queue_full", ...
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


# on_ack(acked_at_monotonic_s, error_or_None): called once per publish. QoS 0 acks when written to the
# socket, QoS 1 on PUBACK, QoS 2 on PUBCOMP. error is e.g. "disconnected" when the session was lost first.
AckCallback = Callable[[float, str | None], None]

# on_data(interface_name, path, value): server-owned data (OTARequest) as decoded BSON.
DataCallback = Callable[[str, str, Value], None]


@dataclass(frozen=True)
class Endpoint:
    """Where a device goes: what the target provides (embedded backend or a real Astarte)."""

    realm: str
    pairing_url: str  # base, the SDK's pairing_base_url: "<base>/pairing"
    agent_jwt: str  # bearer token with the a_pa claim, for registration
    ca_file: str | None = None  # CA bundle to verify pairing HTTPS and the broker; None = system store
    ignore_ssl_errors: bool = False
    credentials_dir: str = ".fleetsim/credentials"  # cache of secrets/keys/certs, keyed by target and device
    source_addresses: tuple[str, ...] = ()  # local addresses to spread connections over (past 64k ports)
    # Issue 9: "host:port" of a fault proxy that devices connect to instead of pairing's broker_url (TLS is
    # end to end, so the broker certificate must match this host too); "" = none. Only the devices listed
    # go through it (() = every device). Honoured by the lean transport (LeanFleet.broker_address).
    broker_override: str = ""
    broker_override_devices: tuple[str, ...] = ()


class Transport(Protocol):
    """One device's connection. Not thread-safe: one device, one caller."""

    device_id: str

    @property
    def connected(self) -> bool: ...

    def connect(self) -> OnboardingTimes:
        """Register if needed, obtain/verify credentials, connect, run the handshake. Raises on failure."""
        ...

    def publish(
        self,
        interface: str,
        path: str,
        value: Value,
        timestamp_ms: int | None,
        on_ack: AckCallback | None = None,
    ) -> None:
        """Validate and publish one datastream value (individual or object aggregate). Raises PublishError."""
        ...

    def set_property(self, interface: str, path: str, value: Value) -> None:
        """Set (value) or unset (None) a device-owned property; QoS 2. Raises PublishError."""
        ...

    def on_data(self, callback: DataCallback) -> None:
        """Register the handler for server-owned data; subscriptions are made during the handshake."""
        ...

    def disconnect(self) -> None:
        """Close the connection (a reboot or the end of the run). Idempotent."""
        ...


class TransportFactory(Protocol):
    def __call__(self, device_id: str, interfaces: Mapping[str, object]) -> Transport: ...
