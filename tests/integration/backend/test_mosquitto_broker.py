"""mosquitto with the generated config: mutual TLS, per-device ACL, admin identity, refusals, clean stop."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from simulator.backend.broker import ADMIN_CN, BrokerConfig
from simulator.backend.broker_select import select_broker
from simulator.backend.ca import LocalCA
from simulator.backend.mosquitto import MosquittoBroker
from tests.integration.backend.tls_helpers import MqttClient, device_id, make_csr, write_device_cert

pytestmark = pytest.mark.integration
REALM = "fleetsim"


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    ca = LocalCA(tmp_path / "state")
    ca.ensure()
    return ca


@pytest.fixture
def broker(ca: LocalCA, mosquitto_binary: str) -> Iterator[MosquittoBroker]:
    cert, key = ca.server_cert()
    b = MosquittoBroker(
        BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM), binary=mosquitto_binary
    )
    b.start()
    yield b
    b.stop()


def _device(ca: LocalCA, tmp_path: Path) -> tuple[str, Path, Path]:
    dev = device_id()
    key, csr = make_csr(f"{REALM}/{dev}")
    cert, keyf = write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))
    return dev, cert, keyf


def _admin(ca: LocalCA, broker: MosquittoBroker) -> MqttClient:
    cert, key = ca.issue_client_cert(ADMIN_CN)
    admin = MqttClient(ca.ca_cert_path, cert, key, "admin")
    assert admin.start(broker.port)
    admin.client.subscribe(f"{REALM}/#", qos=2)
    assert admin.subscribed.wait(5)
    return admin


def test_device_publishes_own_prefix_admin_receives(
    ca: LocalCA, broker: MosquittoBroker, tmp_path: Path
) -> None:
    admin = _admin(ca, broker)
    dev, cert, key = _device(ca, tmp_path)
    device = MqttClient(ca.ca_cert_path, cert, key, dev)
    try:
        assert device.start(broker.port)
        topic = f"{REALM}/{dev}/io.edgehog.devicemanager.OTAEvent/event"
        device.client.publish(topic, b"payload", qos=2)
        got = admin.messages.get(timeout=5)
        assert got == (topic, b"payload", 2)
    finally:
        device.stop()
        admin.stop()
    assert broker.refusals() == {}


def test_publish_under_another_device_prefix_is_denied(
    ca: LocalCA, broker: MosquittoBroker, tmp_path: Path
) -> None:
    admin = _admin(ca, broker)
    dev, cert, key = _device(ca, tmp_path)
    victim = device_id()
    device = MqttClient(ca.ca_cert_path, cert, key, dev)
    try:
        assert device.start(broker.port)
        device.client.publish(f"{REALM}/{victim}/io.edgehog.devicemanager.OTAEvent/event", b"forged", qos=1)
        # The denied publish is acknowledged (MQTT 3.1.1 has no refusal code), then a marker on its own prefix
        # proves ordering: once the marker arrives, the forged message would have arrived before it.
        assert device.published.get(timeout=5)
        device.client.publish(f"{REALM}/{dev}/marker", b"marker", qos=1)
        topic, payload, _ = admin.messages.get(timeout=5)
        assert (topic, payload) == (f"{REALM}/{dev}/marker", b"marker")
        with pytest.raises(queue.Empty):
            admin.messages.get_nowait()
    finally:
        device.stop()
        admin.stop()
    assert broker.wait_for_refusals("acl_publish") and broker.refusals()["acl_publish"] == 1
    assert any("Denied PUBLISH from" in line for line in broker.refusal_examples())
    # Counts outlive the broker process (a restart through the control endpoint stops and starts it).
    broker.stop()
    assert broker.refusals()["acl_publish"] == 1


def test_connection_without_client_certificate_is_refused(ca: LocalCA, broker: MosquittoBroker) -> None:
    anon = MqttClient(ca.ca_cert_path, None, None, "anon")
    try:
        assert not anon.start(broker.port, timeout=3)
    finally:
        anon.stop()
    assert broker.wait_for_refusals("no_client_cert"), (broker.refusals(), broker._log_tail(20))


def test_certificate_from_another_ca_is_refused(ca: LocalCA, broker: MosquittoBroker, tmp_path: Path) -> None:
    other = LocalCA(tmp_path / "other")
    dev = device_id()
    key, csr = make_csr(f"{REALM}/{dev}")
    cert, keyf = write_device_cert(tmp_path, "rogue", key, other.sign_csr(csr, f"{REALM}/{dev}"))
    rogue = MqttClient(ca.ca_cert_path, cert, keyf, dev)
    try:
        assert not rogue.start(broker.port, timeout=3)
    finally:
        rogue.stop()
    assert broker.wait_for_refusals("bad_client_cert"), (broker.refusals(), broker._log_tail(20))


def test_stop_leaves_no_process_and_frees_port(ca: LocalCA, mosquitto_binary: str) -> None:
    cert, key = ca.server_cert()
    broker = select_broker("mosquitto", BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM))
    assert isinstance(broker, MosquittoBroker)
    broker.start()
    pid, port = broker.pid, broker.port
    assert pid is not None and broker.url == f"mqtts://127.0.0.1:{port}/"
    broker.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    listening = {c.laddr[1] for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert port not in listening
