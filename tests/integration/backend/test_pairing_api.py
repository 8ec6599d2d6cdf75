"""Pairing API v1 over real HTTPS (docs/protocol.md section 2): status codes, JSON, persistence, throughput."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator.backend.ca import LocalCA
from simulator.backend.jwt_tokens import AgentTokens
from simulator.backend.pairing import PairingServer
from tests.integration.backend.tls_helpers import device_id, make_csr

pytestmark = pytest.mark.integration
REALM = "fleetsim"
BROKER = "mqtts://127.0.0.1:8883/"


def _server(state: Path) -> PairingServer:
    ca = LocalCA(state)
    cert, key = ca.server_cert()
    return PairingServer(ca, AgentTokens(state), REALM, cert, key, broker_url=BROKER, state_dir=state)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PairingServer]:
    s = _server(tmp_path / "state")
    s.start()
    yield s
    s.stop()


class Api:
    def __init__(self, server: PairingServer) -> None:
        self.base = f"{server.url}/v1/{REALM}"
        self.ca = str(server.ca.ca_cert_path)
        self.jwt = server.tokens.issue_agent_token()
        self.http = requests.Session()

    def call(
        self, method: str, path: str, token: str, data: dict[str, Any] | None = None
    ) -> requests.Response:
        return self.http.request(
            method,
            self.base + path,
            json=None if data is None else {"data": data},
            headers={"Authorization": f"Bearer {token}"},
            verify=self.ca,
            timeout=5,
        )

    def register(self, dev: str) -> requests.Response:
        return self.call("POST", "/agent/devices", self.jwt, {"hw_id": dev, "initial_introspection": {}})

    def pair(self, dev: str, secret: str, cn: str | None = None) -> requests.Response:
        _, csr = make_csr(cn or f"{REALM}/{dev}")
        return self.call(
            "POST", f"/devices/{dev}/protocols/astarte_mqtt_v1/credentials", secret, {"csr": csr.decode()}
        )


def test_register_info_pair_verify(server: PairingServer) -> None:
    api = Api(server)
    dev = device_id()
    res = api.register(dev)
    assert res.status_code == 201
    secret = res.json()["data"]["credentials_secret"]
    info = api.call("GET", f"/devices/{dev}", secret)
    assert info.status_code == 200
    assert info.json()["data"] == {
        "version": "1.2.0",
        "status": "pending",
        "protocols": {"astarte_mqtt_v1": {"broker_url": BROKER}},
    }
    crt = api.pair(dev, secret)
    assert crt.status_code == 201
    pem = crt.json()["data"]["client_crt"]
    assert server.ca.verify_cert(pem.encode(), f"{REALM}/{dev}") == (True, "")
    ok = api.call(
        "POST", f"/devices/{dev}/protocols/astarte_mqtt_v1/credentials/verify", secret, {"client_crt": pem}
    )
    assert ok.status_code == 200
    body = ok.json()["data"]
    assert body["valid"] is True and body["until"] > body["timestamp"]
    assert api.call("GET", f"/devices/{dev}", secret).json()["data"]["status"] == "confirmed"
    # Once confirmed, registering again is refused (astarte_pairing engine.ex register_device).
    again = api.register(dev)
    assert again.status_code == 422 and "errors" in again.json()


def test_reregistration_before_pairing_rotates_the_secret(server: PairingServer) -> None:
    api = Api(server)
    dev = device_id()
    first = api.register(dev).json()["data"]["credentials_secret"]
    second = api.register(dev).json()["data"]["credentials_secret"]
    assert first != second
    assert api.call("GET", f"/devices/{dev}", first).status_code == 401
    assert api.call("GET", f"/devices/{dev}", second).status_code == 200


def test_errors(server: PairingServer, tmp_path: Path) -> None:
    api = Api(server)
    dev = device_id()
    secret = api.register(dev).json()["data"]["credentials_secret"]
    wrong_cn = api.pair(dev, secret, cn=f"{REALM}/{device_id()}")
    assert wrong_cn.status_code == 422 and "csr" in wrong_cn.json()["errors"]
    assert api.call("GET", f"/devices/{dev}", "not-the-secret").status_code == 401
    assert api.call("GET", f"/devices/{dev}", "").status_code == 401
    bad_jwt = api.call("POST", "/agent/devices", api.jwt + "x", {"hw_id": device_id()})
    assert bad_jwt.status_code == 401 and bad_jwt.json() == {"errors": {"detail": "Unauthorized"}}
    narrow = server.tokens.issue_agent_token(paths=("GET::.*",))
    assert api.call("POST", "/agent/devices", narrow, {"hw_id": device_id()}).status_code == 403
    assert api.call("POST", "/agent/devices", api.jwt, {"hw_id": "short"}).status_code == 422
    assert api.call("POST", "/agent/devices", api.jwt, {}).status_code == 422
    assert api.call("GET", "/nowhere", api.jwt).status_code == 404
    other = LocalCA(tmp_path / "other")
    _, csr = make_csr(f"{REALM}/{dev}")
    foreign = other.sign_csr(csr, f"{REALM}/{dev}").decode()
    res = api.call(
        "POST",
        f"/devices/{dev}/protocols/astarte_mqtt_v1/credentials/verify",
        secret,
        {"client_crt": foreign},
    )
    assert res.status_code == 200
    assert res.json()["data"]["valid"] is False and res.json()["data"]["cause"] == "INVALID_ISSUER"
    failures = server.stats()["failures"]
    assert failures["credentials"] == 1 and failures["register"] == 4 and failures["device_info"] == 2


def test_unregister(server: PairingServer) -> None:
    api = Api(server)
    dev = device_id()
    secret = api.register(dev).json()["data"]["credentials_secret"]
    assert api.call("DELETE", f"/agent/devices/{dev}", api.jwt).status_code == 204
    assert api.call("GET", f"/devices/{dev}", secret).status_code == 401
    assert api.call("DELETE", f"/agent/devices/{dev}", api.jwt).status_code == 404


def test_secrets_survive_a_restart_with_the_same_state_dir(tmp_path: Path) -> None:
    first = _server(tmp_path / "state")
    first.start()
    api = Api(first)
    dev = device_id()
    secret = api.register(dev).json()["data"]["credentials_secret"]
    assert api.pair(dev, secret).status_code == 201
    first.stop()
    second = _server(tmp_path / "state")
    second.start()
    try:
        api2 = Api(second)
        info = api2.call("GET", f"/devices/{dev}", secret)
        assert info.status_code == 200 and info.json()["data"]["status"] == "confirmed"
        assert api2.register(dev).status_code == 422
    finally:
        second.stop()


def test_registers_a_fleet_quickly(server: PairingServer) -> None:
    """300 registrations from 8 concurrent clients (keep-alive TLS connections), in well under 3 s."""
    devices = [device_id() for _ in range(300)]
    apis = [Api(server) for _ in range(8)]
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: apis[i % 8].register(devices[i]).status_code, range(len(devices))))
    elapsed = time.monotonic() - start
    assert codes == [201] * len(devices)
    assert server.stats()["devices"]["registered"] == len(devices)
    assert elapsed < 3.0, f"{len(devices)} registrations took {elapsed:.2f} s"
