"""LeanClient.lean_misc_idle against paho's own `loop_misc`: over every combination of the fields paho reads
(socket, connection state, keep-alive, last bytes out and in, the PINGREQ's time), it says "idle" exactly
when paho's step does nothing -- no PINGREQ, no close, no disconnect callback, no field written -- so the
transport may skip the step then (LeanTransport.handle_misc) without changing what happens on the wire."""

from __future__ import annotations

import itertools
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, _ConnectionState

from simulator.transports.lean_client import LeanClient

NOW = 1000.0
STATES = (_ConnectionState.MQTT_CS_CONNECTED, _ConnectionState.MQTT_CS_CONNECT_ASYNC,
          _ConnectionState.MQTT_CS_DISCONNECTING, _ConnectionState.MQTT_CS_CONNECTION_LOST)
KEEPALIVES = (0, 60)
AGES = (0.0, 30.0, 59.999, 60.0, 61.0)  # seconds before NOW (60 s keep-alive: under, at and past it)
PING_AGES: tuple[float | None, ...] = (None, 0.0, 59.0, 60.0, 90.0)  # None: no PINGREQ waiting


class FakeSocket:
    def close(self) -> None:
        pass


def _client(state: Any, keepalive: int, out_age: float, in_age: float, ping_age: float | None,
            with_socket: bool) -> tuple[LeanClient, list[str]]:
    client = LeanClient(CallbackAPIVersion.VERSION2)
    calls: list[str] = []
    client._sock = FakeSocket() if with_socket else None  # type: ignore[assignment]
    client._state = state
    client._keepalive = keepalive
    client._last_msg_out = NOW - out_age
    client._last_bytes_received = NOW - in_age
    client._ping_t = 0 if ping_age is None else NOW - ping_age
    client._send_pingreq = lambda: calls.append("pingreq")  # type: ignore[method-assign,assignment,return-value]
    client._sock_close = lambda: calls.append("close")  # type: ignore[method-assign]
    client.on_disconnect = lambda *args: calls.append("on_disconnect")
    return client, calls


def _fields(client: LeanClient) -> tuple[Any, ...]:
    return (client._sock, client._state, client._last_msg_out, client._last_bytes_received, client._ping_t)


@pytest.mark.parametrize("with_socket", [True, False])
def test_idle_exactly_when_paho_loop_misc_does_nothing(monkeypatch: pytest.MonkeyPatch, with_socket: bool) -> None:
    monkeypatch.setattr(mqtt, "time_func", lambda: NOW)
    idle_seen = acted_seen = 0
    for state, keepalive, out_age, in_age, ping_age in itertools.product(STATES, KEEPALIVES, AGES, AGES,
                                                                         PING_AGES):
        client, calls = _client(state, keepalive, out_age, in_age, ping_age, with_socket)
        idle = client.lean_misc_idle(NOW)
        before = _fields(client)
        client.loop_misc()
        did_nothing = not calls and _fields(client) == before
        case = (state, keepalive, out_age, in_age, ping_age, with_socket)
        assert idle == did_nothing, case
        idle_seen += idle
        acted_seen += not idle
    assert idle_seen > 0
    assert acted_seen > 0 or not with_socket  # with a socket, the grid reaches every paho branch that acts
