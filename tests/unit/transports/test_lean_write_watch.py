"""LeanTransport._sync_write arms the I/O loop's write watcher exactly while bytes wait, and asks the loop
nothing when a write left nothing behind and no watcher is armed (every PUBREL, written after its step)."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.transports import lean
from simulator.transports.lean_client import LeanClient
from simulator.transports.lean_loop import Slot


class _Loop:
    """IoLoop.want_write's effect on the slot (a watcher while on), each call noted."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def want_write(self, slot: Slot, on: bool) -> None:
        self.calls.append(on)
        slot.writer = object() if on else None


class _Fleet:
    def __init__(self) -> None:
        self.loop = _Loop()


class _Socket:
    """Refuses writes while `full`, else takes them whole."""

    def __init__(self) -> None:
        self.full = False
        self.sent = bytearray()

    def send(self, data: Any) -> int:
        if self.full:
            raise BlockingIOError
        self.sent += data
        return len(data)

    def close(self) -> None:
        pass


def test_the_write_watcher_is_armed_while_bytes_wait_and_the_loop_left_alone_otherwise() -> None:
    fleet = _Fleet()
    dev = lean.LeanTransport(fleet, "dev")  # type: ignore[arg-type]
    client = LeanClient(CallbackAPIVersion.VERSION2)
    sock = _Socket()
    client._sock = sock  # type: ignore[assignment]
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    dev.client, dev.slot, dev.state = client, Slot(-1, dev, None), lean.CONNECTED
    dev._send("realm/dev/a", b"x", 2, None)  # written whole inside publish: nothing to arm, nothing asked
    assert fleet.loop.calls == [] and len(sock.sent) > 0
    sock.full = True
    dev._send("realm/dev/a", b"y", 2, None)  # refused: armed
    assert fleet.loop.calls == [True] and client.want_write()
    sock.full = False
    dev._sync_write()  # the rest leaves: disarmed
    assert fleet.loop.calls == [True, False] and not client.want_write() and dev.slot.writer is None
    dev._send("realm/dev/a", b"z", 2, None)
    client.lean_defer = True  # inside a transport step (a PUBREL answering a PUBREC): queued, written after it
    client.publish("realm/dev/a", b"w", 2)
    client.lean_defer = False
    assert client.want_write()
    dev._sync_write()  # written whole, no watcher armed: the loop is not asked
    assert fleet.loop.calls == [True, False] and not client.want_write()
