"""The pip-only amqtt broker: mutual TLS, CN identity, client-id rules, prefix ACL, refusals, clean stop.

Real TLS (LocalCA certificates), real amqtt in a real subprocess, real paho clients on loopback.
"""

from __future__ import annotations

import queue
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from simulator.backend.amqtt_broker import AmqttBroker
from simulator.backend.broker import ADMIN_CN, BrokerConfig
from simulator.backend.ca import LocalCA
from tests.integration.backend.tls_helpers import MqttClient, device_id, make_csr, write_device_cert

pytestmark = pytest.mark.integration
REALM = "fleetsim"
OTA = "io.edgehog.devicemanager.OTAEvent/event"
# paho 2.x maps MQTT 3.1.1 CONNACK codes to MQTT 5 reason codes: 2 -> 133, 5 -> 135 (paho reasoncodes.py).
CLIENT_ID_NOT_VALID, NOT_AUTHORIZED = 133, 135


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    ca = LocalCA(tmp_path_factory.mktemp("amqtt-ca"))
    ca.ensure()
    return ca


@pytest.fixture(scope="module")
def broker(ca: LocalCA) -> Iterator[AmqttBroker]:
    cert, key = ca.server_cert()
    b = AmqttBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def clients() -> Iterator[list[MqttClient]]:
    """Every client a test makes goes here, so its loop thread is stopped even when the test fails."""
    made: list[MqttClient] = []
    yield made
    for c in made:
        c.stop()


def _device(ca: LocalCA, directory: Path, cn: str | None = None) -> tuple[str, Path, Path]:
    dev = device_id()
    cn = cn or f"{REALM}/{dev}"
    key, csr = make_csr(cn)
    cert, keyf = write_device_cert(directory, dev, key, ca.sign_csr(csr, cn))
    return dev, cert, keyf


def _client(
    clients: list[MqttClient], ca: LocalCA, cert: Path | None, key: Path | None, cid: str
) -> MqttClient:
    c = MqttClient(ca.ca_cert_path, cert, key, cid)
    clients.append(c)
    return c


def _admin(clients: list[MqttClient], ca: LocalCA, broker: AmqttBroker, cid: str = "collector") -> MqttClient:
    cert, key = ca.issue_client_cert(ADMIN_CN)
    admin = _client(clients, ca, cert, key, cid)
    assert admin.start(broker.port)
    admin.client.subscribe(f"{REALM}/#", qos=2)
    assert admin.subscribed.wait(5)
    return admin


def _rc(c: MqttClient) -> int:
    return int(getattr(c.connect_rc, "value", -1))


def _next_message(c: MqttClient) -> tuple[str, bytes, int]:
    return c.messages.get(timeout=5)


def test_device_publishes_under_its_prefix_and_admin_receives(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    admin = _admin(clients, ca, broker)
    dev, cert, key = _device(ca, tmp_path)
    device = _client(clients, ca, cert, key, f"{REALM}/{dev}")
    assert device.start(broker.port)
    device.client.publish(f"{REALM}/{dev}/{OTA}", b"ota-event", qos=2)
    assert _next_message(admin) == (f"{REALM}/{dev}/{OTA}", b"ota-event", 2)
    assert broker.url == f"mqtts://127.0.0.1:{broker.port}/"
    assert broker.name == "amqtt"


def test_sdk_style_empty_client_id_is_accepted_and_publish_qos_is_kept(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    # astarte-device-sdk 0.14.0 connects with no client id (device_mqtt.py `mqtt.Client()`).
    admin = _admin(clients, ca, broker, cid="collector-qos")
    dev, cert, key = _device(ca, tmp_path)
    device = _client(clients, ca, cert, key, "")
    assert device.start(broker.port)
    device.client.publish(f"{REALM}/{dev}/control/emptyCache", b"1", qos=1)
    # amqtt 0.12.1 alone would deliver at the subscription's QoS 2; the broker forces the publish QoS.
    assert _next_message(admin) == (f"{REALM}/{dev}/control/emptyCache", b"1", 1)


def _raw_tls_refused(port: int, context: ssl.SSLContext) -> bool:
    """True when the server ends the TLS session (alert or close) before any MQTT byte comes back.

    Over TLS 1.2 (the broker's default, BrokerConfig.broker_tls "astarte") the server checks the client
    certificate before its Finished, so the handshake itself fails; over TLS 1.3 ("openssl") the client finishes
    its handshake before the server has checked it, and the refusal shows up on the first read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                # MQTT 3.1.1 CONNECT, client id "x", clean session, keepalive 30 s.
                tls.sendall(bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 1]) + b"x")
                return tls.recv(4) == b""
        except (ssl.SSLError, ConnectionError):
            return True


def test_no_client_certificate_is_refused_at_tls(ca: LocalCA, broker: AmqttBroker) -> None:
    before = broker.refusals().get("no_cert", 0)
    context = ssl.create_default_context(cafile=str(ca.ca_cert_path))
    assert _raw_tls_refused(broker.port, context)
    assert broker.wait_for_refusals("no_cert", before + 1)


def test_certificate_from_another_ca_is_refused_at_tls(
    ca: LocalCA, broker: AmqttBroker, tmp_path: Path
) -> None:
    other = LocalCA(tmp_path / "other-ca")
    cn = f"{REALM}/{device_id()}"  # a well-formed identity, but signed by a CA the broker does not trust
    key, csr = make_csr(cn)
    cert, keyf = write_device_cert(tmp_path, "foreign", key, other.sign_csr(csr, cn))
    before = broker.refusals().get("bad_cert", 0)
    context = ssl.create_default_context(cafile=str(ca.ca_cert_path))
    context.load_cert_chain(str(cert), str(keyf))
    assert _raw_tls_refused(broker.port, context)
    assert broker.wait_for_refusals("bad_cert", before + 1)


def test_certificate_of_another_realm_is_not_authorized(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    before = broker.refusals().get("bad_cn", 0)
    _, cert, key = _device(ca, tmp_path, cn=f"otherrealm/{device_id()}")
    device = _client(clients, ca, cert, key, "")
    assert not device.start(broker.port)
    assert _rc(device) == NOT_AUTHORIZED
    assert broker.wait_for_refusals("bad_cn", before + 1)


def test_publish_under_another_device_prefix_is_dropped_and_counted(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    admin = _admin(clients, ca, broker, cid="collector-acl")
    dev, cert, key = _device(ca, tmp_path)
    victim = device_id()
    before = broker.refusals().get("acl_publish", 0)
    device = _client(clients, ca, cert, key, f"{REALM}/{dev}")
    assert device.start(broker.port)
    device.client.publish(f"{REALM}/{victim}/{OTA}", b"forged", qos=2)
    device.client.publish(f"{REALM}/{dev}/{OTA}", b"marker", qos=2)  # same connection, same QoS: after it
    assert _next_message(admin) == (f"{REALM}/{dev}/{OTA}", b"marker", 2)
    assert broker.wait_for_refusals("acl_publish", before + 1)
    with pytest.raises(queue.Empty):
        admin.messages.get_nowait()


def test_subscribing_outside_own_prefix_is_refused_and_counted(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    dev, cert, key = _device(ca, tmp_path)
    device = _client(clients, ca, cert, key, f"{REALM}/{dev}")
    granted: queue.Queue[list[int]] = queue.Queue()
    device.client.on_subscribe = lambda _c, _u, _m, codes, _p: granted.put([int(c.value) for c in codes])
    assert device.start(broker.port)
    before = broker.refusals().get("acl_subscribe", 0)
    device.client.subscribe([(f"{REALM}/{device_id()}/#", 2), (f"{REALM}/#", 2), (f"{REALM}/{dev}/#", 2)])
    assert granted.get(timeout=5) == [0x80, 0x80, 2]
    assert broker.wait_for_refusals("acl_subscribe", before + 2)


def test_client_id_not_matching_the_certificate_is_rejected(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    before = broker.refusals().get("client_id_mismatch", 0)
    _, cert, key = _device(ca, tmp_path)
    device = _client(clients, ca, cert, key, f"{REALM}/{device_id()}")
    assert not device.start(broker.port)
    assert _rc(device) == CLIENT_ID_NOT_VALID
    assert broker.wait_for_refusals("client_id_mismatch", before + 1)


def test_device_cannot_take_over_the_collector_session(
    ca: LocalCA, broker: AmqttBroker, clients: list[MqttClient], tmp_path: Path
) -> None:
    admin = _admin(clients, ca, broker, cid="collector-victim")
    before = broker.refusals().get("client_id_reuse", 0)
    dev, cert, key = _device(ca, tmp_path)
    intruder = _client(clients, ca, cert, key, "collector-victim")
    assert not intruder.start(broker.port)
    assert broker.wait_for_refusals("client_id_reuse", before + 1)
    # The collector kept its connection and subscription.
    assert not admin.disconnected.is_set()
    honest = _client(clients, ca, cert, key, f"{REALM}/{dev}")
    assert honest.start(broker.port)
    honest.client.publish(f"{REALM}/{dev}/{OTA}", b"still-there", qos=2)
    assert _next_message(admin) == (f"{REALM}/{dev}/{OTA}", b"still-there", 2)


def test_stop_leaves_no_process_and_frees_the_port(ca: LocalCA, tmp_path: Path) -> None:
    cert, key = ca.server_cert()
    broker = AmqttBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, state_dir=tmp_path))
    broker.start()
    pid, port = broker.pid, broker.port
    assert pid is not None and port > 0 and psutil.pid_exists(pid)
    broker.stop()
    assert not psutil.pid_exists(pid)  # reaped by stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    broker.stop()  # idempotent
    assert broker.pid is None
    # Issue 15 item 9: a clean run's empty log is not left behind (one per start piled up in the state dir).
    assert list(tmp_path.glob("amqtt-*.log")) == [] and list(tmp_path.glob("amqtt-*.json")) == []


def test_unusable_certificate_fails_start_with_one_clear_error(ca: LocalCA, tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    config = BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, missing, missing, REALM, state_dir=tmp_path)
    broker = AmqttBroker(config)
    with pytest.raises(Exception, match="amqtt broker did not start") as info:
        broker.start()
    assert "missing.crt" in str(info.value)
    assert broker.pid is None
    assert all(log.stat().st_size > 0 for log in tmp_path.glob("amqtt-*.log"))  # only logs that say something
