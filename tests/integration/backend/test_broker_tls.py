"""The real mosquitto's TLS: by default Astarte's (TLS 1.2 at most, no session ticket), mosquitto's OpenSSL
defaults (TLS 1.3, tickets) with `broker_tls="openssl"`; mutual TLS enforced either way (simulator.backend.openssl_conf,
BrokerConfig.broker_tls)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.backend.broker import BrokerConfig
from simulator.backend.ca import LocalCA
from simulator.backend.mosquitto import MosquittoBroker
from simulator.backend.server import EmbeddedBackend
from simulator.broker_tls import BrokerTls
from tests.integration.backend.tls_helpers import device_id, make_csr, write_device_cert

pytestmark = pytest.mark.integration
REALM = "fleetsim"
# MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, empty client id (mosquitto assigns one).
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])
_CONNACK_OK = bytes([0x20, 2, 0, 0])


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    ca = LocalCA(tmp_path / "state")
    ca.ensure()
    return ca


@pytest.fixture
def device(ca: LocalCA, tmp_path: Path) -> tuple[Path, Path]:
    dev = device_id()
    key, csr = make_csr(f"{REALM}/{dev}")
    return write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))


def _broker(ca: LocalCA, binary: str, broker_tls: BrokerTls | None = None) -> MosquittoBroker:
    cert, key = ca.server_cert()
    extra = {} if broker_tls is None else {"broker_tls": broker_tls}
    return MosquittoBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, **extra), binary=binary)


@pytest.fixture
def default_broker(ca: LocalCA, mosquitto_binary: str) -> Iterator[MosquittoBroker]:
    with _broker(ca, mosquitto_binary) as broker:
        yield broker


def _connect(port: int, ca: LocalCA, cert: tuple[Path, Path] | None,
             version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> tuple[bytes, str | None, bool]:
    """Full mutual-TLS handshake + CONNECT; returns (first 4 bytes read, TLS version, session.has_ticket). The
    tickets come before the CONNACK, so reading it has processed them."""
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert_path))
    ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(_CONNECT)
        got = b""
        while len(got) < 4:
            chunk = tls.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
        session = tls.session
        return got, tls.version(), session is not None and session.has_ticket


def test_by_default_tls12_and_no_ticket_even_for_a_tls13_client(
    default_broker: MosquittoBroker, ca: LocalCA, device: tuple[Path, Path]
) -> None:
    assert _connect(default_broker.port, ca, device) == (_CONNACK_OK, "TLSv1.2", False)
    assert _connect(default_broker.port, ca, device, ssl.TLSVersion.TLSv1_2) == (_CONNACK_OK, "TLSv1.2", False)
    assert "MaxProtocol = TLSv1.2" in default_broker.openssl_conf_path.read_text()
    assert default_broker.refusals() == {}


def test_a_client_that_wants_tls13_only_is_refused_by_default(
    default_broker: MosquittoBroker, ca: LocalCA, device: tuple[Path, Path]
) -> None:
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(device[0]), str(device[1]))
    with socket.create_connection(("127.0.0.1", default_broker.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_openssl_defaults_on_request(ca: LocalCA, mosquitto_binary: str, device: tuple[Path, Path]) -> None:
    with _broker(ca, mosquitto_binary, "openssl") as broker:
        assert _connect(broker.port, ca, device) == (_CONNACK_OK, "TLSv1.3", True)
        assert _connect(broker.port, ca, device, ssl.TLSVersion.TLSv1_2) == (_CONNACK_OK, "TLSv1.2", True)
        assert not broker.openssl_conf_path.exists()


def test_a_client_without_a_certificate_is_still_refused(default_broker: MosquittoBroker, ca: LocalCA) -> None:
    # TLS 1.2: the server checks the client's (empty) Certificate before its Finished, so the client's
    # handshake itself fails (under TLS 1.3 the refusal came on the first read).
    with pytest.raises((ssl.SSLError, ConnectionError)):
        got, _, _ = _connect(default_broker.port, ca, None)
        if got != _CONNACK_OK:
            raise ConnectionError(f"refused, read {got!r}")
    assert default_broker.wait_for_refusals("no_client_cert")


def test_a_certificate_from_another_ca_is_still_refused(
    default_broker: MosquittoBroker, ca: LocalCA, tmp_path: Path
) -> None:
    other = LocalCA(tmp_path / "other")
    other.ensure()
    dev = device_id()
    key, csr = make_csr(f"{REALM}/{dev}")
    foreign = write_device_cert(tmp_path, dev, key, other.sign_csr(csr, f"{REALM}/{dev}"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        got, _, _ = _connect(default_broker.port, ca, foreign)
        if got != _CONNACK_OK:
            raise ConnectionError(f"refused, read {got!r}")
    assert default_broker.wait_for_refusals("bad_client_cert")


def test_the_embedded_backend_passes_the_choice_to_its_broker(tmp_path: Path, mosquitto_binary: str) -> None:
    del mosquitto_binary  # the fixture only requires mosquitto (EmbeddedBackend finds it itself)
    with EmbeddedBackend(tmp_path / "backend", realm=REALM, broker="mosquitto", broker_tls="openssl") as backend:
        assert backend.info is not None and isinstance(backend.broker, MosquittoBroker)
        assert not backend.broker.openssl_conf_path.exists()
        ca = backend.ca
        dev = device_id()
        key, csr = make_csr(f"{REALM}/{dev}")
        cert = write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))
        assert _connect(backend.broker.port, ca, cert) == (_CONNACK_OK, "TLSv1.3", True)


@pytest.mark.parametrize(("broker_tls", "expected"), [(None, ("TLSv1.2", False)), ("openssl", ("TLSv1.3", True))])
def test_the_pip_only_broker_follows_the_same_setting(
    ca: LocalCA, device: tuple[Path, Path], broker_tls: BrokerTls | None, expected: tuple[str, bool]
) -> None:
    from simulator.backend.amqtt_broker import AmqttBroker

    cert, key = ca.server_cert()
    extra = {} if broker_tls is None else {"broker_tls": broker_tls}
    broker = AmqttBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, **extra))
    broker.start()
    try:
        assert _connect(broker.port, ca, device) == (_CONNACK_OK, *expected)
    finally:
        broker.stop()


@pytest.mark.parametrize(("broker_tls", "expected"), [("astarte", ("TLSv1.2", False)), ("openssl", ("TLSv1.3", True))])
def test_fleetsim_runs_backend_process_passes_the_choice(
    tmp_path: Path, mosquitto_binary: str, broker_tls: str, expected: tuple[str, bool]
) -> None:
    """The path `fleetsim run --broker-tls X` takes: open_target -> BackendProcess -> the child's flag."""
    del mosquitto_binary  # the fixture only requires mosquitto
    from simulator.generator.target import open_target

    state = tmp_path / "st"
    with open_target("embedded", REALM, state, broker="mosquitto", broker_tls=broker_tls) as target:
        assert target.broker_kind == "mosquitto"
        conf = state / "backend" / "mosquitto" / "openssl.cnf"
        assert conf.exists() == (broker_tls == "astarte")
        ca = LocalCA(state / "backend")
        dev = device_id()
        key, csr = make_csr(f"{REALM}/{dev}")
        cert = write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))
        port = int(target.broker_url.rsplit(":", 1)[1].strip("/"))
        assert _connect(port, ca, cert) == (_CONNACK_OK, *expected)
