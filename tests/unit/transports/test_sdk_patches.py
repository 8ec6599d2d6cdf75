"""The sdk transport's hooks, without a broker: poll-based select, ack tracking, the in-memory property DB."""

from __future__ import annotations

import fcntl
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.enums import MQTTErrorCode

from simulator.transports.memory_db import MemoryDatabase
from simulator.transports.sdk_patches import (
    AckTracker,
    PairingCalls,
    install_poll_select,
    poll_select,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _high_fd_socket(sock: socket.socket) -> socket.socket:
    """A duplicate of `sock` whose fd number is >= 1024 (beyond select()'s FD_SETSIZE)."""
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD, 1500)
    assert fd >= 1024
    return socket.socket(fileno=fd)


def test_poll_select_reports_readable_and_writable_like_select(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    assert poll_select([a], [], [], 0.0) == ([], [], [])
    b.send(b"x")
    r, w, x = poll_select([a], [a], [], 1.0)
    assert r == [a] and w == [a] and x == []
    assert select.select([a], [a], [], 1.0)[:2] == ([a], [a])


def test_poll_select_times_out_with_nothing_ready(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    assert poll_select([a], [], [], 0.01) == ([], [], [])


def test_poll_select_handles_fds_beyond_fd_setsize(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    high = _high_fd_socket(a)
    try:
        with pytest.raises(ValueError):
            select.select([high], [], [], 0)  # the ceiling we lift
        b.send(b"y")
        assert poll_select([high], [], [], 1.0)[0] == [high]
    finally:
        high.close()


def test_poll_select_rejects_closed_sockets_like_select() -> None:
    a, b = socket.socketpair()
    a.close()
    b.close()
    # paho._loop maps ValueError/TypeError from select() to "connection lost": keep those exceptions.
    with pytest.raises(ValueError):
        poll_select([a], [], [], 0)
    with pytest.raises((TypeError, AttributeError)):
        poll_select([None], [], [], 0)


def test_install_poll_select_is_idempotent_and_keeps_other_attributes() -> None:
    install_poll_select()
    assert install_poll_select() is False
    module: Any = paho_client
    assert module.select.select is poll_select
    assert module.select.POLLIN == select.POLLIN


class FakeInfo:
    def __init__(self, mid: int, rc: MQTTErrorCode = MQTTErrorCode.MQTT_ERR_SUCCESS) -> None:
        self.mid = mid
        self.rc = rc


class FakeClient:
    """The two attributes AckTracker touches: publish() and on_publish."""

    def __init__(self) -> None:
        self.mid = 0
        self.on_publish: Any = None
        self.ack_inside_publish = False
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                properties: Any = None) -> FakeInfo:
        self.mid += 1
        if self.ack_inside_publish:  # QoS 0: paho acks on socket write, before publish() returns
            self.on_publish(self, None, self.mid)
        return FakeInfo(self.mid, self.rc)


def _tracker(now: list[float]) -> tuple[AckTracker, FakeClient]:
    tracker = AckTracker(lambda: now[0])
    client = FakeClient()
    tracker.attach(client)
    return tracker, client


def test_ack_goes_to_the_callback_of_the_publish_that_made_it() -> None:
    now = [10.0]
    tracker, client = _tracker(now)
    got: list[tuple[str, float, str | None]] = []
    tracker.expect(lambda t, e: got.append(("first", t, e)))
    client.publish("r/d/a", b"1", 2)
    client.publish("r/d/introspection", b"x", 2)  # the SDK's own publish: no slot armed
    tracker.expect(lambda t, e: got.append(("second", t, e)))
    client.publish("r/d/b", b"2", 2)
    assert tracker.pending() == 2
    now[0] = 10.5
    client.on_publish(client, None, 3)
    now[0] = 10.7
    client.on_publish(client, None, 2)
    client.on_publish(client, None, 1)
    assert got == [("second", 10.5, None), ("first", 10.7, None)]
    assert tracker.pending() == 0 and tracker.acked == 2


def test_ack_arriving_before_publish_returns_is_not_lost() -> None:
    now = [1.0]
    tracker, client = _tracker(now)
    client.ack_inside_publish = True
    got: list[tuple[float, str | None]] = []
    tracker.expect(lambda t, e: got.append((t, e)))
    client.publish("r/d/a", b"1", 0)
    assert got == [(1.0, None)]
    assert tracker.pending() == 0


def test_slot_is_per_thread_and_one_shot() -> None:
    now = [0.0]
    tracker, client = _tracker(now)
    got: list[str] = []
    tracker.expect(lambda _t, _e: got.append("caller"))
    other = threading.Thread(target=lambda: client.publish("r/d/other", b"", 2))
    other.start()
    other.join(5)
    client.publish("r/d/mine", b"", 2)  # mid 2
    client.publish("r/d/again", b"", 2)  # mid 3: the slot was consumed
    for mid in (1, 2, 3):
        client.on_publish(client, None, mid)
    assert got == ["caller"]


def test_refused_and_unconnected_publishes_fail_at_once_and_fail_all_reports_the_rest() -> None:
    now = [5.0]
    tracker, client = _tracker(now)
    got: list[str | None] = []
    client.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
    tracker.expect(lambda _t, e: got.append(e))
    client.publish("r/d/a", b"", 2)
    client.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
    tracker.expect(lambda _t, e: got.append(e))
    client.publish("r/d/a", b"", 0)
    tracker.expect(lambda _t, e: got.append(e))
    client.publish("r/d/a", b"", 2)  # QoS 2 stays queued in paho: still pending
    assert got == ["queue_full", "disconnected"]
    assert tracker.fail_all("disconnected") == 1
    assert got == ["queue_full", "disconnected", "disconnected"]
    assert tracker.pending() == 0


def test_pairing_calls_sums_and_orders_by_kind() -> None:
    calls = PairingCalls([("verify", 1.0, 0.2), ("pairing_info", 1.3, 0.1), ("pairing_info", 2.0, 0.05)])
    assert calls.total("pairing_info") == pytest.approx(0.15)
    assert calls.start_of("pairing_info") == 1.3
    assert calls.total("registration") is None


def test_memory_database_mirrors_the_sdk_sqlite_semantics() -> None:
    db = MemoryDatabase()
    assert bool(db)  # the SDK does `database if database else SQLite(...)`: an empty cache must be truthy
    db.store_prop("io.x.BaseImage", 0, "/version", "1.0.0")
    db.store_prop("io.x.BaseImage", 0, "/name", "img")
    db.store_prop("io.x.OSInfo", 0, "/osName", "Linux")
    assert db.load_all_props() == [
        ("io.x.BaseImage", 0, "/version", "1.0.0"),
        ("io.x.BaseImage", 0, "/name", "img"),
        ("io.x.OSInfo", 0, "/osName", "Linux"),
    ]
    db.store_prop("io.x.BaseImage", 0, "/version", "2.0.0")
    assert db.load_prop("io.x.BaseImage", 0, "/version") == "2.0.0"
    db.store_prop("io.x.BaseImage", 0, "/name", "")  # falsy = unset, as AstarteDatabaseSQLite.store_prop
    assert db.load_prop("io.x.BaseImage", 0, "/name") is None
    assert db.load_prop("io.x.BaseImage", 1, "/version") is None  # major mismatch drops it
    assert db.load_prop("io.x.BaseImage", 0, "/version") is None
    db.delete_props_from_interface("io.x.OSInfo")
    assert db.count() == 0
    db.store_prop("io.x.OSInfo", 0, "/osName", "Linux")
    db.clear()
    assert db.load_all_props() == []
