"""A collector far behind its broker still receives every message, with the backend's generated mosquitto config.

With a window (`max_inflight_messages` 100, and 1000 too) mosquitto 2.0.11 left most of a burst several windows deep
undelivered to a collector slower than the burst, though acknowledged to the publisher: 109-150 of 2,500 arrived in
90 s, 223 in 25 s. Its debug log shows why: acknowledgements never moved a queued message into the window; only the
next message for the collector did, after its own write (db__message_insert, src/database.c at tag v2.0.11), so once
the burst had come the rest stayed queued (simulator/backend/mosquitto.py module docstring). The backend runs
without a window, where nothing waits in that queue: here the collector is slowed to ~2 ms a message while one
publisher sends a burst several windows deep, and every message must arrive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.backend.broker import ADMIN_CN, BrokerConfig
from simulator.backend.ca import LocalCA
from simulator.backend.collector import Collector, CollectorConfig
from simulator.backend.mosquitto import MosquittoBroker
from simulator.events import EventKey
from tests.integration.backend.test_collector import ota_payload
from tests.integration.backend.tls_helpers import device_id

pytestmark = pytest.mark.integration
REALM = "fleetsim"
BURST = 2500  # QoS 2 OTAEvents: with a window of 1,000, 259 of them stayed in mosquitto
SLOW_S = 0.002  # per message in the collector: ~500 messages/s, far below the publisher's burst


@pytest.fixture
def setup(tmp_path: Path, mosquitto_binary: str) -> Iterator[tuple[MosquittoBroker, Collector, LocalCA]]:
    ca = LocalCA(tmp_path / "state")
    ca.ensure()
    cert, key = ca.server_cert()
    broker = MosquittoBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, verbose_log=False),
                             binary=mosquitto_binary)
    broker.start()

    def slow(_key: EventKey) -> bool:
        time.sleep(SLOW_S)  # sleep-ok: stands for a collector slower than the publisher (the backlog under test)
        return False

    acert, akey = ca.issue_client_cert(ADMIN_CN)
    collector = Collector(CollectorConfig("127.0.0.1", broker.port, ca.ca_cert_path, acert, akey, REALM),
                          drop=slow)
    collector.start()
    yield broker, collector, ca
    collector.stop()
    broker.stop()


def test_every_message_of_a_deep_backlog_arrives(setup: tuple[MosquittoBroker, Collector, LocalCA]) -> None:
    broker, collector, ca = setup
    cert, key = ca.issue_client_cert(ADMIN_CN)  # the admin identity may publish on any device's topics
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="burst")
    pub.tls_set(ca_certs=str(ca.ca_cert_path), certfile=str(cert), keyfile=str(key))
    pub.max_inflight_messages_set(BURST)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        dev = device_id()
        pub.publish(f"{REALM}/{dev}", b"io.edgehog.devicemanager.OTAEvent:1:0", qos=2)
        infos = [pub.publish(f"{REALM}/{dev}/io.edgehog.devicemanager.OTAEvent/event",
                             ota_payload("Downloading", statusProgress=i % 100), qos=2) for i in range(BURST)]
        for info in infos:
            info.wait_for_publish(60)
        assert all(info.is_published() for info in infos)
        # Acknowledged by the broker: now each must reach the collector (slowed, so this takes ~5 s).
        assert collector.wait_for(lambda: collector.arrival_count() >= BURST, 20), collector.arrival_count()
        assert collector.arrival_count() == BURST
    finally:
        pub.disconnect()
        pub.loop_stop()
