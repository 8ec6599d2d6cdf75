"""An UNMODIFIED astarte-device-sdk 0.14.0 device against the embedded backend: register (JWT), pair (CSR),
connect over mutual TLS to mosquitto and send an OTAEvent that the admin identity sees arrive.

Trust: the SDK verifies TLS with the default stores (requests: REQUESTS_CA_BUNDLE; paho: OpenSSL's
SSL_CERT_FILE), so the test points both at the backend's CA (BackendInfo.client_env()) and keeps
ignore_ssl_errors=False: the whole chain is verified.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import bson
import pytest
from astarte.device import DeviceMqtt
from astarte.device.exceptions import AuthorizationError
from astarte.device.pairing_handler import register_device_with_jwt_token

from simulator.backend.server import EmbeddedBackend
from simulator.backend_info import BackendInfo
from tests.integration.backend.tls_helpers import MqttClient, device_id

pytestmark = pytest.mark.integration
IFACES = Path(__file__).resolve().parents[3] / "simulator" / "interfaces"
OTA_EVENT = "io.edgehog.devicemanager.OTAEvent"


@pytest.fixture
def backend(
    tmp_path: Path, mosquitto_binary: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(tmp_path / "state", broker="mosquitto")
    info = b.start()
    for name, value in info.client_env().items():
        monkeypatch.setenv(name, value)
    yield b
    b.stop()


def _admin(info: BackendInfo) -> MqttClient:
    admin = MqttClient(Path(info.ca_file), Path(info.admin_cert), Path(info.admin_key), "test-admin")
    assert admin.start(info.broker_port)
    admin.client.subscribe(f"{info.realm}/#", qos=2)
    assert admin.subscribed.wait(5)
    return admin


def test_sdk_device_registers_pairs_connects_and_sends_ota_event(
    backend: EmbeddedBackend, tmp_path: Path
) -> None:
    info = backend.info
    assert info is not None
    admin = _admin(info)
    dev = device_id()
    secret = register_device_with_jwt_token(dev, info.realm, info.agent_jwt, info.pairing_url)
    persist = tmp_path / "sdk"
    persist.mkdir()
    device = DeviceMqtt(dev, info.realm, secret, info.pairing_url, str(persist))
    device.add_interface_from_file(IFACES / f"{OTA_EVENT}.json")
    connected = threading.Event()
    device.set_events_callbacks(on_connected=lambda _d: connected.set())
    try:
        device.connect()
        assert connected.wait(10), "SDK device did not connect"
        event = {
            "requestUUID": "7f4c3e0a-1111-4222-8333-944455556666",
            "status": "Downloading",
            "statusProgress": 10,
            "statusCode": "",
            "message": "",
        }
        sent_at = dt.datetime.now(dt.UTC)
        device.send_aggregate(OTA_EVENT, "/event", event, timestamp=sent_at)
        topic = f"{info.realm}/{dev}/{OTA_EVENT}/event"
        while True:  # the SDK's connect handshake (introspection, emptyCache, ...) arrives first
            got_topic, payload, qos = admin.messages.get(timeout=10)
            if got_topic == topic:
                break
        assert qos == 2  # OTAEvent is `unique` => QoS 2 (docs/protocol.md section 1)
        doc = bson.loads(payload)
        assert doc["v"] == event
        stats = backend.stats()["pairing"]
        assert stats["requests"]["register"] == 1
        assert stats["requests"]["credentials"] == 1
        assert stats["requests"]["device_info"] == 1
        assert not stats["failures"]
    finally:
        device.disconnect()
        admin.stop()


def test_bad_jwt_is_refused_with_401(backend: EmbeddedBackend) -> None:
    info = backend.info
    assert info is not None
    with pytest.raises(AuthorizationError):
        register_device_with_jwt_token(
            device_id(), info.realm, info.agent_jwt[:-4] + "AAAA", info.pairing_url
        )
    assert backend.stats()["pairing"]["failures"] == {"register": 1}
