"""What one lean device needs from the fleet it belongs to (`LeanServices`), and the error its connect raises.

A Protocol, so that simulator.transports.lean (one device) does not import simulator.transports.lean_fleet
(the fleet, which creates devices): the fleet depends on its devices, never the other way round.
simulator.transports.lean_fleet.LeanFleet is the implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import gevent.lock
from astarte.device.interface import Interface

from simulator.clock import Clock
from simulator.errors import FleetsimError
from simulator.transports.base import Endpoint
from simulator.transports.credentials import CredentialsCache
from simulator.transports.lean_loop import IoLoop
from simulator.transports.pairing_client import PairingClient

__all__ = ["ConnectError", "LeanServices"]


class ConnectError(FleetsimError):
    """connect() failed after pairing: TCP/TLS refused, CONNACK refused or late, handshake not acked."""

    def __init__(self, device_id: str, reason: str) -> None:
        self.device_id = device_id
        self.reason = reason
        super().__init__(f"device {device_id}: {reason}")


class LeanServices(Protocol):
    """The shared part of a lean fleet, as a device uses it (read-only here; seconds for every *_s)."""

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def interfaces(self) -> Mapping[str, Interface]: ...

    @property
    def introspection(self) -> bytes: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def revalidate(self) -> bool: ...

    @property
    def keepalive_s(self) -> int: ...

    @property
    def timeout_s(self) -> float: ...

    @property
    def loop(self) -> IoLoop: ...

    @property
    def pairing(self) -> PairingClient: ...

    @property
    def cache(self) -> CredentialsCache: ...

    @property
    def reconnect_gate(self) -> gevent.lock.BoundedSemaphore: ...

    @property
    def stopped(self) -> bool: ...

    def new_client(self, dev: Any) -> Any:
        """A configured paho client for the device `dev` (a LeanTransport)."""

    def broker_address(self, device_id: str, host: str, port: int) -> tuple[str, int]:
        """Where the device connects (the broker, or the fault proxy in front of it)."""

    def backoff_s(self, attempt: int) -> float:
        """Delay before reconnect attempt `attempt` (0-based)."""
