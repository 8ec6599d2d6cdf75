"""The collector over a real mosquitto with real mutual TLS: devices are paho clients with CA-signed certs."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bson
import pytest

from simulator.backend.broker import ADMIN_CN, BrokerConfig
from simulator.backend.ca import LocalCA
from simulator.backend.collector import Collector, CollectorConfig
from simulator.backend.control_http import ControlServer
from simulator.backend.mosquitto import MosquittoBroker
from simulator.events import EventKey
from simulator.observers.embedded import CollectorClient
from simulator.records import ARRIVAL_LOG_HEADER
from tests.integration.backend.tls_helpers import MqttClient, device_id, make_csr, write_device_cert

pytestmark = pytest.mark.integration
REALM = "fleetsim"
OTA = "io.edgehog.devicemanager.OTAEvent"


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    ca = LocalCA(tmp_path / "state")
    ca.ensure()
    return ca


@pytest.fixture
def broker(ca: LocalCA, mosquitto_binary: str) -> Iterator[MosquittoBroker]:
    cert, key = ca.server_cert()
    b = MosquittoBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, verbose_log=False),
                        binary=mosquitto_binary)
    b.start()
    yield b
    b.stop()


def collector_config(ca: LocalCA, broker: MosquittoBroker) -> CollectorConfig:
    cert, key = ca.issue_client_cert(ADMIN_CN)
    return CollectorConfig("127.0.0.1", broker.port, ca.ca_cert_path, cert, key, REALM)


def connect_device(ca: LocalCA, broker: MosquittoBroker, tmp_path: Path) -> tuple[str, MqttClient]:
    dev = device_id()
    key, csr = make_csr(f"{REALM}/{dev}")
    cert, keyf = write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))
    client = MqttClient(ca.ca_cert_path, cert, keyf, f"{REALM}/{dev}")
    assert client.start(broker.port)
    return dev, client


def handshake(client: MqttClient, dev: str) -> None:
    """What the SDK publishes on a fresh session (device_mqtt.py on_connect): introspection, emptyCache."""
    client.client.publish(f"{REALM}/{dev}", f"{OTA}:0:1".encode(), qos=2)
    client.client.publish(f"{REALM}/{dev}/control/emptyCache", b"1", qos=2)


def ota_payload(status: str, with_t: bool = True, **overrides: object) -> bytes:
    value: dict[str, object] = {"requestUUID": "0b7a4c43-8f3e-4c9b-9d57-3b2c1f1e0a11", "status": status,
                                "statusProgress": 0, "statusCode": "", "message": ""}
    value.update(overrides)
    doc: dict[str, object] = {"v": value}
    if with_t:
        doc["t"] = dt.datetime.now(dt.UTC)
    data: bytes = bson.dumps(doc)
    return data


def test_records_an_ota_event_with_its_arrival_time(
    ca: LocalCA, broker: MosquittoBroker, tmp_path: Path
) -> None:
    collector = Collector(collector_config(ca, broker))
    collector.start()
    control = ControlServer(collector)
    base = control.start()
    dev, client = connect_device(ca, broker, tmp_path)
    try:
        handshake(client, dev)
        before = time.time()
        client.client.publish(f"{REALM}/{dev}/{OTA}/event", ota_payload("Acknowledged"), qos=2)
        assert collector.wait_for(lambda: collector.arrival_count() == 1, timeout=5.0)
        after = time.time()
        (record,) = collector.arrivals()
        assert record.key == (dev, "0b7a4c43-8f3e-4c9b-9d57-3b2c1f1e0a11", "Acknowledged", 0, 0)
        assert before <= record.arrival <= after
        assert record.t_ms is not None and abs(record.t_ms / 1000 - record.arrival) < 2.0
        assert record.qos == 2
        assert collector.violations() == {}
        assert collector.devices_seen() == {dev}

        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            assert r.read() == b"ok\n"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert "fleetsim_collector_arrivals_total 1" in metrics
        assert 'fleetsim_collector_messages_total{kind="introspection"} 1' in metrics
        assert "fleetsim_collector_devices_seen 1" in metrics
        with urllib.request.urlopen(f"{base}/arrivals?since=0", timeout=5) as r:
            lines = r.read().decode().splitlines()
        assert lines[0] == ",".join(ARRIVAL_LOG_HEADER)
        assert lines[1].startswith(f"{dev},0b7a4c43-8f3e-4c9b-9d57-3b2c1f1e0a11,Acknowledged,0,0,")
        with urllib.request.urlopen(f"{base}/arrivals?since=1", timeout=5) as r:
            assert r.read().decode().splitlines() == [",".join(ARRIVAL_LOG_HEADER)]
        # fleetsim's own processes read JSON (issue 17), never the Prometheus text above.
        client_view = CollectorClient(base)
        assert client_view.arrival_count() == 1
        assert client_view.stats()["messages"]["introspection"] == 1
        (seen,) = client_view.arrivals(since=0)
        assert seen.key == record.key and seen.t_ms == record.t_ms and abs(seen.arrival - record.arrival) < 1e-5
        assert client_view.arrivals(since=1) == []
    finally:
        client.stop()
        control.stop()
        collector.stop()


def test_flags_missing_leaf_wrong_type_wrong_qos_missing_t(
    ca: LocalCA, broker: MosquittoBroker, tmp_path: Path
) -> None:
    collector = Collector(collector_config(ca, broker))
    collector.start()
    control = ControlServer(collector)
    base = control.start()
    dev, client = connect_device(ca, broker, tmp_path)
    topic = f"{REALM}/{dev}/{OTA}/event"
    try:
        handshake(client, dev)
        missing_leaf = bson.loads(ota_payload("Downloading"))
        del missing_leaf["v"]["message"]
        client.client.publish(topic, bson.dumps(missing_leaf), qos=2)
        client.client.publish(topic, ota_payload("Downloading", statusProgress="10"), qos=2)
        client.client.publish(topic, ota_payload("Deploying"), qos=1)
        client.client.publish(topic, ota_payload("Deployed", with_t=False), qos=2)
        expected = {"missing_leaf": 1, "wrong_type": 1, "wrong_qos": 1, "missing_t": 1}
        assert collector.wait_for(lambda: collector.violations() == expected, 5.0), collector.violations()
        reasons = {e["violation"]: str(e["reason"]) for e in collector.violation_examples()}
        assert "lacks leaf message" in reasons["missing_leaf"]
        assert "statusProgress is integer" in reasons["wrong_type"]
        assert "QoS 1, reliability says 2" in reasons["wrong_qos"]
        assert "'t' missing" in reasons["missing_t"]
        # Arrivals are kept whenever the key is readable, with the QoS as delivered (the QoS 1 message may
        # overtake the QoS 2 ones: MQTT orders per QoS flow only).
        assert sorted((r.key[2], r.qos, r.t_ms is None) for r in collector.arrivals()) == [
            ("Deployed", 2, True), ("Deploying", 1, False), ("Downloading", 2, False)]
        with urllib.request.urlopen(f"{base}/violations", timeout=5) as r:
            body = json.loads(r.read())
        assert body["counts"] == expected and len(body["examples"]) == 4
    finally:
        client.stop()
        control.stop()
        collector.stop()


def test_drop_hook_discards_on_purpose(ca: LocalCA, broker: MosquittoBroker, tmp_path: Path) -> None:
    def drop(key: EventKey) -> bool:
        return key[2] == "Rebooting" and key[4] == 0

    collector = Collector(collector_config(ca, broker), drop=drop)
    collector.start()
    dev, client = connect_device(ca, broker, tmp_path)
    try:
        handshake(client, dev)
        for status in ("Deployed", "Rebooting", "Rebooting", "Success"):
            client.client.publish(f"{REALM}/{dev}/{OTA}/event", ota_payload(status), qos=2)
        assert collector.wait_for(lambda: collector.stats()["handled"] + collector.stats()["dropped"] == 6,
                                  timeout=5.0)
        assert [(r.key[2], r.key[4]) for r in collector.arrivals()] == [
            ("Deployed", 0), ("Rebooting", 1), ("Success", 0)]
        assert collector.stats()["dropped"] == 1
    finally:
        client.stop()
        collector.stop()


def test_start_fails_clearly_without_a_broker(ca: LocalCA, tmp_path: Path) -> None:
    from simulator.backend.mosquitto import free_port
    from simulator.errors import UsageError

    cert, key = ca.issue_client_cert(ADMIN_CN)
    collector = Collector(CollectorConfig("127.0.0.1", free_port(), ca.ca_cert_path, cert, key, REALM))
    with pytest.raises(UsageError, match="collector: cannot connect"):
        collector.start(timeout=2.0)


def test_collector_socket_has_no_nagle_delay(ca: LocalCA, broker: MosquittoBroker) -> None:
    """paho hands a QoS 2 message over at the broker's PUBREL, after our PUBREC: with Nagle on, that PUBREC waited
    for the broker's delayed ACK (~40 ms) whenever two messages came close together (e2e p90 37 ms at 16
    events/s). The collector's socket must carry TCP_NODELAY."""
    import socket

    col = Collector(collector_config(ca, broker))
    col.start()
    try:
        client = col._client
        assert client is not None and client.socket() is not None
        assert client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        col.stop()
