"""The real mosquitto's TLS session tickets: OpenSSL's by default, none with 0 (as Astarte's VerneMQ), N on
request; mutual TLS still enforced (simulator.backend.openssl_conf, BrokerConfig.tls_session_tickets)."""

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


def _broker(ca: LocalCA, binary: str, **kw: int) -> MosquittoBroker:
    cert, key = ca.server_cert()
    return MosquittoBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, **kw), binary=binary)


@pytest.fixture
def no_ticket_broker(ca: LocalCA, mosquitto_binary: str) -> Iterator[MosquittoBroker]:
    with _broker(ca, mosquitto_binary, tls_session_tickets=0) as broker:
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


def test_no_ticket_with_zero_over_tls13_and_tls12(
    no_ticket_broker: MosquittoBroker, ca: LocalCA, device: tuple[Path, Path]
) -> None:
    assert _connect(no_ticket_broker.port, ca, device) == (_CONNACK_OK, "TLSv1.3", False)
    assert _connect(no_ticket_broker.port, ca, device, ssl.TLSVersion.TLSv1_2) == (_CONNACK_OK, "TLSv1.2", False)
    assert "NumTickets = 0" in no_ticket_broker.openssl_conf_path.read_text()
    assert no_ticket_broker.refusals() == {}


@pytest.mark.parametrize("tickets", [None, 2])
def test_tickets_by_default_and_on_request(
    ca: LocalCA, mosquitto_binary: str, device: tuple[Path, Path], tickets: int | None
) -> None:
    extra = {} if tickets is None else {"tls_session_tickets": tickets}
    with _broker(ca, mosquitto_binary, **extra) as broker:
        assert _connect(broker.port, ca, device) == (_CONNACK_OK, "TLSv1.3", True)
        assert _connect(broker.port, ca, device, ssl.TLSVersion.TLSv1_2) == (_CONNACK_OK, "TLSv1.2", True)
        assert broker.openssl_conf_path.exists() == (tickets is not None)


def test_a_client_without_a_certificate_is_still_refused(
    no_ticket_broker: MosquittoBroker, ca: LocalCA
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        got, _, _ = _connect(no_ticket_broker.port, ca, None)
        # TLS 1.3: the server checks the client's (empty) Certificate after the client's handshake returned; the
        # refusal shows on the first read (an alert, or EOF: nothing read).
        if got != _CONNACK_OK:
            raise ConnectionError(f"refused, read {got!r}")
    assert no_ticket_broker.wait_for_refusals("no_client_cert")


def test_the_embedded_backend_passes_the_count_to_its_broker(tmp_path: Path, mosquitto_binary: str) -> None:
    del mosquitto_binary  # the fixture only requires mosquitto (EmbeddedBackend finds it itself)
    with EmbeddedBackend(tmp_path / "backend", realm=REALM, broker="mosquitto", tls_session_tickets=0) as backend:
        assert backend.info is not None and isinstance(backend.broker, MosquittoBroker)
        assert "NumTickets = 0" in backend.broker.openssl_conf_path.read_text()
        ca = backend.ca
        dev = device_id()
        key, csr = make_csr(f"{REALM}/{dev}")
        cert = write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))
        assert _connect(backend.broker.port, ca, cert) == (_CONNACK_OK, "TLSv1.3", False)


@pytest.mark.parametrize(("tickets", "expected"), [(None, True), (0, False)])
def test_the_pip_only_broker_follows_the_same_setting(
    ca: LocalCA, device: tuple[Path, Path], tickets: int | None, expected: bool
) -> None:
    from simulator.backend.amqtt_broker import AmqttBroker

    cert, key = ca.server_cert()
    extra = {} if tickets is None else {"tls_session_tickets": tickets}
    broker = AmqttBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, **extra))
    broker.start()
    try:
        assert _connect(broker.port, ca, device) == (_CONNACK_OK, "TLSv1.3", expected)
    finally:
        broker.stop()


def test_fleetsim_runs_backend_process_passes_the_count(tmp_path: Path, mosquitto_binary: str) -> None:
    """The path `fleetsim run --tls-session-tickets N` takes: open_target -> BackendProcess -> the child's flag."""
    del mosquitto_binary  # the fixture only requires mosquitto
    from simulator.generator.target import open_target

    state = tmp_path / "st"
    with open_target("embedded", REALM, state, broker="mosquitto", tls_session_tickets=0) as target:
        assert target.broker_kind == "mosquitto"
        assert (state / "backend" / "mosquitto" / "openssl.cnf").read_text().count("NumTickets = 0") == 1
        ca = LocalCA(state / "backend")
        dev = device_id()
        key, csr = make_csr(f"{REALM}/{dev}")
        cert = write_device_cert(tmp_path, dev, key, ca.sign_csr(csr, f"{REALM}/{dev}"))
        port = int(target.broker_url.rsplit(":", 1)[1].strip("/"))
        assert _connect(port, ca, cert) == (_CONNACK_OK, "TLSv1.3", False)
