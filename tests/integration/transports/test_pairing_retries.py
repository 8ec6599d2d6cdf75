"""Pairing calls retry a transient failure (issue 15 item 4): a real HTTPS Pairing API (the embedded backend's,
with its CA) that answers every request path once with HTTP 500, then normally. Before, one 5xx lost the
device for the whole run."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.backend.ca import LocalCA
from simulator.backend.jwt_tokens import AgentTokens
from simulator.backend.pairing import PairingServer
from simulator.records import OnboardingTimes
from simulator.transports.credentials import CredentialsCache
from simulator.transports.pairing_client import PairingClient, PairingError, onboard
from simulator.transports.pairing_counts import RETRY_COUNTS
from simulator.transports.pairing_retry import RetryPolicy
from tests.integration.backend.tls_helpers import device_id

pytestmark = pytest.mark.integration
REALM = "fleetsim"


class FlakyPairing(PairingServer):
    """The real Pairing API, but the first request to each (method, path) fails with `status` -- `times` times."""

    def __init__(self, *args: Any, status: int = 500, times: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status, self.times = status, times
        self.seen: dict[tuple[str, str], int] = {}
        self.failed: list[tuple[str, str]] = []

    def handle(self, method: str, path: str, auth: str, body: bytes) -> tuple[str, int, dict[str, Any]]:
        key = (method, path)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= self.times:
            self.failed.append(key)
            return "flaky", self.status, {"errors": {"detail": "injected failure"}}
        return super().handle(method, path, auth, body)


def _flaky(state: Path, **kwargs: Any) -> FlakyPairing:
    ca = LocalCA(state)
    cert, key = ca.server_cert()
    return FlakyPairing(ca, AgentTokens(state), REALM, cert, key, broker_url="mqtts://127.0.0.1:8883/",
                        state_dir=state, **kwargs)


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[FlakyPairing]:
    server = _flaky(tmp_path / "state")
    server.start()
    yield server
    server.stop()


def test_each_phase_survives_one_500(flaky: FlakyPairing, tmp_path: Path) -> None:
    waits: list[float] = []
    client = PairingClient(flaky.url, REALM, str(flaky.ca.ca_cert_path), sleep=waits.append)
    cache = CredentialsCache(tmp_path / "creds", "t")
    jwt = flaky.tokens.issue_agent_token()
    dev = device_id()
    before = RETRY_COUNTS.snapshot()
    creds = onboard(client, cache, dev, jwt, OnboardingTimes())
    assert creds.cert_pem is not None and creds.broker_url == "mqtts://127.0.0.1:8883/"
    # Reconnect: the cached certificate is verified (and the broker URL asked for) again, each failing once.
    again = onboard(client, cache, dev, jwt, OnboardingTimes())
    assert again.cert_pem == creds.cert_pem
    client.close()
    assert len(flaky.failed) == 4  # register, credentials, device info, verify: one 500 each
    retried = RETRY_COUNTS.since(before)
    assert retried == {"pairing_retries.registration": 1, "pairing_retries.certificate": 1,
                       "pairing_retries.pairing_info": 1, "pairing_retries.verify": 1}
    policy = RetryPolicy()
    assert len(waits) == 4 and all(0.0 <= w <= policy.base_s for w in waits)  # first retries: <= 0.5 s


def test_a_persistent_503_gives_up_within_the_budget_and_says_why(tmp_path: Path) -> None:
    server = _flaky(tmp_path / "state", status=503, times=100)
    server.start()
    try:
        waits: list[float] = []
        client = PairingClient(server.url, REALM, str(server.ca.ca_cert_path), sleep=waits.append)
        before = RETRY_COUNTS.snapshot()
        with pytest.raises(PairingError) as err:
            client.register(device_id(), server.tokens.issue_agent_token())
        client.close()
    finally:
        server.stop()
    policy = RetryPolicy()
    assert err.value.status == 503 and "HTTP 503" in str(err.value)
    assert len(server.failed) == policy.attempts and len(waits) == policy.attempts - 1
    assert RETRY_COUNTS.since(before) == {"pairing_retries.registration": policy.attempts - 1,
                                          "pairing_gave_up.registration": 1}


class HeldPairing(PairingServer):
    """The real Pairing API, holding the first `n` requests until all `n` are in: `n` connections open at once."""

    def __init__(self, *args: Any, n: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.barrier = threading.Barrier(n, timeout=30)

    def handle(self, method: str, path: str, auth: str, body: bytes) -> tuple[str, int, dict[str, Any]]:
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()
        return super().handle(method, path, auth, body)


@pytest.mark.parametrize("pool", [8, None])
def test_the_connection_pool_never_throws_connections_away(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, pool: int | None) -> None:
    """The default pool holds every concurrent onboarding; a pool smaller than the calls in flight makes the
    extra calls wait for a pooled connection (pool_block) rather than open one it then discards (before: 8
    pooled connections for 64 calls logged "Connection pool is full, discarding connection")."""
    from simulator.transports.pairing_client import ONBOARDING_AT_ONCE

    state = tmp_path / "state"
    ca = LocalCA(state)
    cert, key = ca.server_cert()
    n = ONBOARDING_AT_ONCE
    held = n if pool is None else pool  # the server sees at most `pool` calls at once, in groups of `pool`
    server = HeldPairing(ca, AgentTokens(state), REALM, cert, key, broker_url="mqtts://127.0.0.1:8883/",
                         state_dir=state, n=held)
    server.start()
    client = (PairingClient(server.url, REALM, str(ca.ca_cert_path)) if pool is None else
              PairingClient(server.url, REALM, str(ca.ca_cert_path), pool_size=pool))
    statuses: list[int | None] = []

    def one() -> None:
        try:
            client.info(device_id(), "not-a-secret")
        except PairingError as exc:
            statuses.append(exc.status)

    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    try:
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        client.close()
        server.stop()
    assert statuses == [401] * n  # every call answered (an unknown device's secret is refused)
    full = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert not full, len(full)
    assert 0 < client.connections_opened <= held  # never more connections than the pool holds


def test_a_wrong_ca_is_a_clear_tls_error_not_retried(flaky: FlakyPairing, tmp_path: Path) -> None:
    """The Pairing API's certificate is not signed by the CA given: one clear error, no retry (retrying
    cannot fix a certificate), over the real HTTPS Pairing API."""
    other = LocalCA(tmp_path / "other-ca")
    other.ensure()
    waits: list[float] = []
    client = PairingClient(flaky.url, REALM, str(other.ca_cert_path), sleep=waits.append)
    before = RETRY_COUNTS.snapshot()
    with pytest.raises(PairingError) as err:
        client.info(device_id(), "x")
    client.close()
    assert err.value.status is None and "TLS error" in str(err.value) and "CERTIFICATE_VERIFY_FAILED" in str(
        err.value)
    assert waits == [] and flaky.seen == {}
    assert RETRY_COUNTS.since(before) == {"pairing_gave_up.pairing_info": 1}


def test_keep_alive_across_reconnect_calls(flaky: FlakyPairing, tmp_path: Path) -> None:
    """The SDK's verify + info on every reconnect ride one kept-alive HTTPS connection, and a 4xx is
    surfaced with its status, not retried."""
    flaky.times = 0
    client = PairingClient(flaky.url, REALM, str(flaky.ca.ca_cert_path))
    cache = CredentialsCache(tmp_path / "creds", "t")
    dev = device_id()
    creds = onboard(client, cache, dev, flaky.tokens.issue_agent_token(), OnboardingTimes())
    for _ in range(5):
        assert onboard(client, cache, dev, "unused", OnboardingTimes()) == creds
    with pytest.raises(PairingError) as err:
        client.info(dev, "not-the-secret")
    client.close()
    assert err.value.status in (401, 403) and client.connections_opened == 1


def test_the_sdk_transports_own_pairing_calls_retry_too(flaky: FlakyPairing) -> None:
    from astarte.device import pairing_handler

    from simulator.transports.sdk_patches import install_pairing_shim, register_pairing_ca

    install_pairing_shim()
    register_pairing_ca(flaky.url, str(flaky.ca.ca_cert_path))
    proxy = pairing_handler.requests
    waits: list[float] = []
    proxy.retry_sleep = waits.append  # type: ignore[attr-defined]
    before = RETRY_COUNTS.snapshot()
    try:
        secret = pairing_handler.register_device_with_jwt_token(
            device_id(), REALM, flaky.tokens.issue_agent_token(), flaky.url, False)
    finally:
        proxy.retry_sleep = time.sleep  # type: ignore[attr-defined]
    assert isinstance(secret, str) and secret
    assert len(flaky.failed) == 1 and len(waits) == 1
    assert RETRY_COUNTS.since(before) == {"pairing_retries.registration": 1}
