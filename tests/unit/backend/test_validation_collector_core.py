"""The collector's bookkeeping, driven through `handle_message` (no broker; the MQTT path is covered by
tests/integration/backend/test_collector.py)."""

from __future__ import annotations

import datetime as dt
import threading

import bson

from simulator.backend.collector import Collector, CollectorConfig
from simulator.clock import VirtualClock
from simulator.events import EventKey

REALM = "test"
DEV = "AAECAwQFBgcICQoLDA0ODw"
OTA = "io.edgehog.devicemanager.OTAEvent"
T = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def config() -> CollectorConfig:
    return CollectorConfig("127.0.0.1", 1, "ca.pem", "c.pem", "k.pem", REALM)


def ota(status: str, progress: int = 0, uuid: str = "u1") -> bytes:
    data: bytes = bson.dumps({"v": {"requestUUID": uuid, "status": status, "statusProgress": progress,
                                    "statusCode": "", "message": ""}, "t": T})
    return data


def handshake(c: Collector) -> None:
    c.handle_message(f"{REALM}/{DEV}", 2, f"{OTA}:0:1;io.edgehog.devicemanager.BaseImage:0:1".encode())
    c.handle_message(f"{REALM}/{DEV}/control/emptyCache", 2, b"1")


def test_occurrences_arrival_time_and_drop_hook() -> None:
    clock = VirtualClock(start=5.0)
    dropped: list[EventKey] = []

    def drop(key: EventKey) -> bool:
        if key[2] == "Rebooting" and key[4] == 1:
            dropped.append(key)
            return True
        return False

    c = Collector(config(), clock=clock, drop=drop)
    handshake(c)
    for status in ("Acknowledged", "Rebooting", "Rebooting", "Rebooting", "Success"):
        clock.advance(1.0)
        c.handle_message(f"{REALM}/{DEV}/{OTA}/event", 2, ota(status))
    keys = [r.key for r in c.arrivals()]
    assert keys == [(DEV, "u1", "Acknowledged", 0, 0), (DEV, "u1", "Rebooting", 0, 0),
                    (DEV, "u1", "Rebooting", 0, 2), (DEV, "u1", "Success", 0, 0)]
    assert dropped == [(DEV, "u1", "Rebooting", 0, 1)]
    assert [r.arrival for r in c.arrivals()] == [clock.wall() - 4, clock.wall() - 3, clock.wall() - 1,
                                                 clock.wall()]
    assert c.arrivals()[0].t_ms == int(T.timestamp() * 1000)
    assert c.arrivals(since=3)[0].key[2] == "Success"
    stats = c.stats()
    assert stats["dropped"] == 1 and stats["arrivals"] == 4 and c.violations() == {}
    assert stats["messages"] == {"introspection": 1, "empty_cache": 1, "datastream": 4}
    assert stats["qos_delivered"][f"{OTA}|2"] == 4


def test_violations_are_counted_with_examples_and_arrivals_kept() -> None:
    c = Collector(config(), clock=VirtualClock())
    c.handle_message(f"{REALM}/{DEV}/{OTA}/event", 2, ota("Acknowledged"))  # before introspection
    handshake(c)
    c.handle_message(f"{REALM}/{DEV}/{OTA}/event", 1, ota("Downloading"))  # wrong QoS
    no_t = bson.dumps({"v": {"requestUUID": "u1", "status": "Deployed", "statusProgress": 0,
                             "statusCode": "", "message": ""}})
    c.handle_message(f"{REALM}/{DEV}/{OTA}/event", 2, no_t)
    assert c.violations() == {"handshake_order": 1, "wrong_qos": 1, "missing_t": 1}
    reasons = {e["violation"]: e["reason"] for e in c.violation_examples()}
    assert "before any introspection" in str(reasons["handshake_order"])
    assert [(r.key[2], r.qos, r.t_ms is None) for r in c.arrivals()] == [
        ("Acknowledged", 2, False), ("Downloading", 1, False), ("Deployed", 2, True)]


def test_properties_set_and_unset() -> None:
    c = Collector(config(), clock=VirtualClock())
    handshake(c)
    topic = f"{REALM}/{DEV}/io.edgehog.devicemanager.BaseImage/version"
    c.handle_message(topic, 2, bson.dumps({"v": "1.0.0"}))
    c.handle_message(topic, 2, bson.dumps({"v": "2.0.0"}))
    assert c.properties(DEV) == {"io.edgehog.devicemanager.BaseImage": {"/version": "2.0.0"}}
    assert c.devices_seen() == {DEV}
    assert c.handshake(DEV) == {"introspection": {OTA: (0, 1), "io.edgehog.devicemanager.BaseImage": (0, 1)},
                                "empty_cache": True, "producer_properties": False, "introspections": 1}


def test_wait_for_wakes_on_a_message_from_another_thread() -> None:
    c = Collector(config(), clock=VirtualClock())
    handshake(c)
    worker = threading.Thread(target=c.handle_message, args=(f"{REALM}/{DEV}/{OTA}/event", 2, ota("Success")))
    worker.start()
    assert c.wait_for(lambda: c.arrival_count() == 1, timeout=5.0)
    worker.join(5.0)
    assert not c.wait_for(lambda: c.arrival_count() == 2, timeout=0.01)
