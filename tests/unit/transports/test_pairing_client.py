"""PairingClient against a tiny in-test Pairing API v1 stub on loopback: paths, bodies, errors, timing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from simulator.transports.base import OnboardingTimes
from simulator.transports.credentials import CredentialsCache
from simulator.transports.pairing_client import AlreadyRegistered, PairingClient, PairingError, onboard

DEV = "AAAAAAAAAAAAAAAAAAAAAA"


def _a_real_cert() -> str:
    """Any well-formed certificate: the cache checks that what it stores parses."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test/{DEV}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CERT = _a_real_cert()


class _Stub(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, str, Any]]] = []
    registered: ClassVar[set[str]] = set()

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization", "")
        self.calls.append((method, self.path, auth, body))
        base = "/pairing/v1/test"
        if method == "POST" and self.path == f"{base}/agent/devices":
            if auth != "Bearer JWT":
                return self._reply(401, {"errors": {"detail": "Unauthorized"}})
            hw = body["data"]["hw_id"]
            if hw in self.registered:
                return self._reply(422, {"errors": {"hw_id": ["already registered"]}})
            self.registered.add(hw)
            return self._reply(201, {"data": {"credentials_secret": "SECRET"}})
        if auth != "Bearer SECRET":
            return self._reply(403, {"errors": {"detail": "Forbidden"}})
        if method == "GET" and self.path == f"{base}/devices/{DEV}":
            proto = {"astarte_mqtt_v1": {"broker_url": "mqtts://127.0.0.1:8883/"}}
            return self._reply(200, {"data": {"version": "1", "status": "ok", "protocols": proto}})
        if self.path == f"{base}/devices/{DEV}/protocols/astarte_mqtt_v1/credentials":
            assert "BEGIN CERTIFICATE REQUEST" in body["data"]["csr"]
            return self._reply(201, {"data": {"client_crt": CERT}})
        if self.path.endswith("/credentials/verify"):
            return self._reply(200, {"data": {"valid": body["data"]["client_crt"] == CERT}})
        return self._reply(404, {"errors": {"detail": "Not Found"}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


@pytest.fixture
def stub() -> Iterator[str]:
    _Stub.calls = []
    _Stub.registered = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pairing"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_register_info_certificate_verify(stub: str) -> None:
    from simulator.transports.pairing_client import generate_key

    client = PairingClient(stub, "test", None)
    assert client.register(DEV, "JWT") == "SECRET"
    assert _Stub.calls[-1][3] == {"data": {"hw_id": DEV}}  # exactly the SDK's body
    with pytest.raises(AlreadyRegistered) as err:
        client.register(DEV, "JWT")
    assert err.value.status == 422
    assert client.info(DEV, "SECRET") == "mqtts://127.0.0.1:8883/"
    assert client.obtain_certificate(DEV, "SECRET", generate_key()) == CERT.encode()
    assert client.verify(DEV, "SECRET", CERT) is True
    assert client.verify(DEV, "SECRET", b"other") is False
    with pytest.raises(PairingError) as err2:
        client.info(DEV, "WRONG")
    assert err2.value.status == 403 and "HTTP 403" in str(err2.value)
    with pytest.raises(PairingError, match="HTTP 401"):
        PairingClient(stub, "test", None).register("BBBBBBBBBBBBBBBBBBBBBB", "bad")
    client.close()


def test_connection_refused_is_clear() -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = PairingClient(f"http://127.0.0.1:{port}/pairing", "test", None, timeout_s=2, sleep=waits.append)
    with pytest.raises(PairingError) as err:
        client.info(DEV, "x")
    assert err.value.status is None and "cannot connect" in str(err.value)
    assert len(waits) == client.retry_policy.attempts - 1  # connection errors are retried, then reported


def test_onboard_times_and_cache(stub: str, tmp_path: Path) -> None:
    client = PairingClient(stub, "test", None)
    cache = CredentialsCache(tmp_path, "t")
    first = OnboardingTimes()
    creds = onboard(client, cache, DEV, "JWT", first)
    assert creds.secret == "SECRET" and creds.cert_pem == CERT.encode() and creds.key_pem is not None
    assert first.registration is not None and first.certificate is not None and first.pairing_info is not None
    assert cache.get(DEV) == creds
    # Second connect: no registration, no CSR; the SDK's verify + info (revalidate=True).
    second = OnboardingTimes()
    assert onboard(client, cache, DEV, "JWT", second) == creds
    assert second.registration is None and second.certificate is None
    assert "verify" in second.extra and second.pairing_info is not None
    # revalidate=False: no HTTP at all.
    n = len(_Stub.calls)
    third = OnboardingTimes()
    assert onboard(client, cache, DEV, "JWT", third, revalidate=False) == creds
    assert len(_Stub.calls) == n and third.pairing_info is None
    client.close()
