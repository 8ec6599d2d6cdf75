"""LeanTransport._wait_connected: one wait per connect, the same outcomes and messages as a wait per phase."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gevent
import pytest

from simulator.clock import MonotonicClock
from simulator.transports import lean
from simulator.transports.lean_services import ConnectError

TIMEOUT_S = 0.2


class _Loop:
    def remove_member(self, channel: Any) -> None:
        pass


def _connecting() -> lean.LeanTransport:
    fleet = SimpleNamespace(timeout_s=TIMEOUT_S, clock=MonotonicClock(), loop=_Loop())
    dev = lean.LeanTransport(fleet, "DEVICE0000000000000000")  # type: ignore[arg-type]
    dev.state = lean.CONNECTING  # as connect() leaves it before waiting; no paho client (None)
    return dev


def _connack(dev: lean.LeanTransport, refused: bool = False, session_present: bool = False) -> None:
    """What _on_connect does with a CONNACK, minus the handshake's writes (no client)."""
    dev.connack_at = dev.fleet.clock.monotonic()
    if refused:
        dev.connack_error = "CONNACK refused: Not authorized"
        dev.connack.set()
        dev.handshake_done.set()
        return
    dev.state = lean.CONNECTED
    dev.session_present = session_present
    if session_present:
        dev.handshake_done.set()
    dev.connack.set()


def test_connack_then_acks() -> None:
    dev = _connecting()
    gevent.spawn_later(0.01, _connack, dev)
    gevent.spawn_later(0.02, dev.handshake_done.set)
    dev._wait_connected()
    assert dev.state == lean.CONNECTED and dev.connack_at is not None


def test_session_present_ends_the_wait_at_the_connack() -> None:
    dev = _connecting()
    gevent.spawn_later(0.01, _connack, dev, False, True)
    dev._wait_connected()
    assert dev.connected and dev.session_present


def test_no_connack() -> None:
    dev = _connecting()
    with pytest.raises(ConnectError, match=f"no CONNACK within {TIMEOUT_S} s"):
        dev._wait_connected()
    assert dev.state == lean.CLOSED


def test_acks_get_their_own_timeout_from_the_connack() -> None:
    """A CONNACK late in its timeout leaves the acks a whole timeout after it, as a second wait did."""
    dev = _connecting()
    gevent.spawn_later(TIMEOUT_S * 0.75, _connack, dev)
    gevent.spawn_later(TIMEOUT_S * 1.25, dev.handshake_done.set)  # past the first wait's end
    dev._wait_connected()
    assert dev.connected


def test_no_acks() -> None:
    dev = _connecting()
    gevent.spawn_later(0.01, _connack, dev)
    with pytest.raises(ConnectError, match=f"no handshake acks within {TIMEOUT_S} s"):
        dev._wait_connected()
    assert dev.state == lean.CLOSED


def test_refused() -> None:
    dev = _connecting()
    gevent.spawn_later(0.01, _connack, dev, True)
    with pytest.raises(ConnectError, match="CONNACK: CONNACK refused: Not authorized"):
        dev._wait_connected()


def test_disconnect_while_waiting_for_the_connack() -> None:
    dev = _connecting()
    gevent.spawn_later(0.01, dev.disconnect)
    with pytest.raises(ConnectError, match="CONNACK: connection lost"):
        dev._wait_connected()


def test_connection_lost_during_the_handshake() -> None:
    dev = _connecting()

    def lost() -> None:  # _on_disconnect after the CONNACK: reconnecting by itself, the connect fails
        dev.state = lean.RECONNECTING
        dev.handshake_done.set()

    gevent.spawn_later(0.01, _connack, dev)
    gevent.spawn_later(0.02, lost)
    with pytest.raises(ConnectError, match="handshake acks: connection lost"):
        dev._wait_connected()
