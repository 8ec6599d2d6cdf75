"""Device side of the Astarte Pairing API v1: register, ask for a certificate, verify it, get the broker URL.

Same requests, bodies and key/CSR as astarte-device-sdk 0.14.0 (astarte/device/pairing_handler.py, crypto.py;
docs/protocol.md section 2): base URL `<pairing_url>/v1/<realm>`, `Bearer <agent JWT>` for registration and
`Bearer <credentials secret>` for the device calls; key EC P-256 (SECP256R1), CSR subject `O=Devices,
CN=<realm>/<device_id>` signed with SHA-256. Blocking `requests` calls (the SDK's HTTP client): under gevent
monkey patching they yield to other greenlets. One pooled `requests` adapter per client keeps connections
alive (the SDK opens one per call; a load generator should not spend its CPU on TCP/TLS setup to the pairing
API). Calls go to the adapter directly, not through `Session.request`: the session's per-call work (cookie
jar, environment merge with a ~/.netrc lookup, hooks, redirect handling the Pairing API never asks for) was
half of the HTTP cost in a campaign where every operation reboots and each reconnect calls verify + info
(bench/campaign_capacity.py --profile: 8.5% of the generator's CPU). The environment's proxies and CA bundle
(HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, what the session would have merged) are read once, here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.errors import UsageError
from simulator.records import OnboardingTimes
from simulator.transports.credentials import CredentialsCache, DeviceCredentials
from simulator.transports.pairing_retry import RetryPolicy, send_with_retries

__all__ = [
    "AlreadyRegistered",
    "PairingClient",
    "PairingError",
    "build_csr",
    "generate_key",
    "key_to_pem",
    "onboard",
]

# Seconds per HTTP call; the SDK's DEFAULT_TIMEOUT (pairing_handler.py) is 30.
DEFAULT_TIMEOUT_S = 30.0
# Devices onboarding at once per generator process (simulator.generator.fleet ONBOARDING_CONCURRENCY).
ONBOARDING_AT_ONCE = 64
# Pooled keep-alive connections to the Pairing API per process: the devices onboarding at once plus those
# reconnecting at once (LeanFleet max_parallel_reconnects, 32 by default). A smaller pool opens extra
# connections and discards them after one call (urllib3: "Connection pool is full, discarding connection"),
# paying a TCP + TLS handshake per call.
DEFAULT_POOL_SIZE = ONBOARDING_AT_ONCE + 32


# The headers requests' Session would add (requests.utils.default_headers), so the calls look the same.
_HEADERS = dict(requests.utils.default_headers())


class PairingError(UsageError):
    """A Pairing API call failed: `status` is the HTTP status (None when the server could not be reached)."""

    def __init__(self, phase: str, url: str, status: int | None, detail: str) -> None:
        self.phase = phase
        self.url = url
        self.status = status
        self.detail = detail
        code = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"pairing {phase}: {url}: {code}: {detail}")


class AlreadyRegistered(PairingError):
    """422 on registration: the device id is taken and its secret is not known here."""


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A device key as the SDK makes it (crypto.py `generate_csr`: EC SECP256R1)."""
    return ec.generate_private_key(curve=ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PEM, TraditionalOpenSSL, unencrypted: the SDK's device.key format (crypto.py)."""
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.TraditionalOpenSSL,
        encryption_algorithm=serialization.NoEncryption(),
    )


def build_csr(realm: str, device_id: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """PEM CSR with subject O=Devices, CN=<realm>/<device_id>, SHA-256 (crypto.py `generate_csr`)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{realm}/{device_id}"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _detail(res: requests.Response) -> str:
    try:
        body: Any = res.json()
    except ValueError:
        return res.text[:200] or res.reason or ""
    if isinstance(body, dict) and "errors" in body:
        return str(body["errors"])[:200]
    return str(body)[:200]


class PairingClient:
    """Blocking client of one realm's Pairing API; `pairing_url` = SDK pairing_base_url (`<base>/pairing`)."""

    def __init__(
        self,
        pairing_url: str,
        realm: str,
        ca_file: str | None,
        ignore_ssl_errors: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pool_size: int = DEFAULT_POOL_SIZE,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.realm = realm
        self.base = f"{pairing_url.rstrip('/')}/v1/{realm}"
        self.timeout_s = timeout_s
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep  # time.sleep: a greenlet switch under gevent; tests pass a recorder
        # requests' `verify`: False (ignore errors, as the SDK does), a CA bundle, or the system store.
        self._verify: bool | str = False if ignore_ssl_errors else (ca_file or True)
        if self._verify is True:  # what Session.merge_environment_settings does with verify=True
            self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies = requests.utils.get_environ_proxies(self.base)
        # pool_block: a call finding every pooled connection busy waits for one (cooperatively under gevent)
        # instead of opening an extra one that the full pool then throws away ("Connection pool is full,
        # discarding connection"): 9% of the generator's CPU went to those TLS handshakes when every
        # operation rebooted and reconnects outnumbered the pool (bench/campaign_capacity.py --profile).
        self._adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=True)
        self._session = requests.Session()  # unregister (rare): the plain session API
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)

    def close(self) -> None:
        self._session.close()  # closes the adapter's pool too

    def _call(
        self, phase: str, method: str, path: str, bearer: str, body: Mapping[str, Any] | None, ok: int
    ) -> Any:
        url = self.base + path

        def send() -> requests.Response:
            prepared = requests.Request(method, url, json=dict(body) if body is not None else None,
                                        headers={**_HEADERS, "Authorization": f"Bearer {bearer}"}).prepare()
            res = self._adapter.send(prepared, timeout=self.timeout_s, verify=self._verify,
                                     proxies=self._proxies)
            _ = res.content  # read it all, as Session.send does: the connection goes back to the pool now
            return res

        try:
            # 429, 5xx and connection errors are retried with backoff and jitter (pairing_retry: numbers, why).
            res = send_with_retries(phase, send, policy=self.retry_policy, sleep=self._sleep)
        except requests.exceptions.Timeout as exc:
            raise PairingError(phase, url, None, f"timed out after {self.timeout_s} s") from exc
        except requests.exceptions.ConnectionError as exc:  # SSLError included
            if isinstance(exc, requests.exceptions.SSLError):
                why = f"TLS error (check ca_file / ignore_ssl_errors): {exc}"
                raise PairingError(phase, url, None, why) from exc
            raise PairingError(phase, url, None, f"cannot connect (retried): {exc}") from exc
        if res.status_code == 422 and phase == "registration":
            raise AlreadyRegistered(phase, url, 422, "device already registered and its secret is not in the "
                                    "credentials cache; `fleetsim devices unregister DEVICE` (same --target and "
                                    "--state-dir) frees it; " + _detail(res))
        if res.status_code != ok:
            raise PairingError(phase, url, res.status_code, _detail(res))
        try:
            return res.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            why = f"unexpected response body: {res.text[:200]}"
            raise PairingError(phase, url, res.status_code, why) from exc

    def register(self, device_id: str, agent_jwt: str, introspection: dict[str, Any] | None = None) -> str:
        """POST /agent/devices -> credentials secret. The SDK sends only hw_id; introspection is optional."""
        data: dict[str, Any] = {"hw_id": device_id}
        if introspection is not None:
            data["initial_introspection"] = introspection
        out = self._call("registration", "POST", "/agent/devices", agent_jwt, {"data": data}, 201)
        secret = out.get("credentials_secret") if isinstance(out, dict) else None
        if not isinstance(secret, str):
            raise PairingError("registration", self.base, 201, "no credentials_secret in the response")
        return secret

    def unregister(self, device_id: str, agent_jwt: str) -> None:
        """DELETE /agent/devices/<id> (204), so that the id can be registered again."""
        url = f"{self.base}/agent/devices/{device_id}"
        try:
            headers = {"Authorization": f"Bearer {agent_jwt}"}
            res = self._session.delete(url, headers=headers, verify=self._verify, timeout=self.timeout_s)
        except requests.exceptions.RequestException as exc:
            raise PairingError("unregistration", url, None, str(exc)) from exc
        if res.status_code not in (200, 204):
            raise PairingError("unregistration", url, res.status_code, _detail(res))

    def info(self, device_id: str, secret: str) -> str:
        """GET /devices/<id> -> the astarte_mqtt_v1 broker URL (`mqtts://host:port/`)."""
        out = self._call("pairing_info", "GET", f"/devices/{device_id}", secret, None, 200)
        try:
            url = out["protocols"]["astarte_mqtt_v1"]["broker_url"]
        except (KeyError, TypeError) as exc:
            why = f"no astarte_mqtt_v1 broker_url in {out!r:.200}"
            raise PairingError("pairing_info", self.base, 200, why) from exc
        if not isinstance(url, str):
            raise PairingError("pairing_info", self.base, 200, "broker_url is not a string")
        return url

    def obtain_certificate(self, device_id: str, secret: str, key: ec.EllipticCurvePrivateKey) -> bytes:
        """POST .../credentials with a CSR for `key` -> the signed client certificate (PEM bytes)."""
        csr = build_csr(self.realm, device_id, key).decode("ascii")
        path = f"/devices/{device_id}/protocols/astarte_mqtt_v1/credentials"
        out = self._call("certificate", "POST", path, secret, {"data": {"csr": csr}}, 201)
        crt = out.get("client_crt") if isinstance(out, dict) else None
        if not isinstance(crt, str):
            raise PairingError("certificate", self.base + path, 201, "no client_crt in the response")
        return crt.encode("ascii")

    def verify(self, device_id: str, secret: str, cert_pem: bytes | str) -> bool:
        """POST .../credentials/verify -> whether Astarte still accepts the certificate."""
        pem = cert_pem.decode("ascii") if isinstance(cert_pem, bytes) else cert_pem
        path = f"/devices/{device_id}/protocols/astarte_mqtt_v1/credentials/verify"
        out = self._call("verify", "POST", path, secret, {"data": {"client_crt": pem}}, 200)
        return bool(isinstance(out, dict) and out.get("valid", False))


def _register(client: PairingClient, cache: CredentialsCache, device_id: str, agent_jwt: str,
              times: OnboardingTimes, introspection: dict[str, Any] | None) -> DeviceCredentials:
    t0 = time.monotonic()
    secret = client.register(device_id, agent_jwt, introspection)
    times.registration = time.monotonic() - t0
    creds = DeviceCredentials(secret)
    cache.put(device_id, creds)
    return creds


def onboard(
    client: PairingClient,
    cache: CredentialsCache,
    device_id: str,
    agent_jwt: str,
    times: OnboardingTimes,
    revalidate: bool = True,
    introspection: dict[str, Any] | None = None,
) -> DeviceCredentials:
    """Everything before the MQTT connect, timed phase by phase into `times` (seconds, monotonic).

    revalidate=True does what the SDK does on every connect (device_mqtt.py `connect`, crypto.py
    `device_has_certificate`): verify a cached certificate (`times.extra["verify"]`) and ask for the broker
    URL again. revalidate=False trusts the cache (fewer pairing calls when reconnecting a large fleet).
    Missing pieces are always obtained: registration when no secret is cached, a new key + certificate when
    none is cached or the cached one is no longer valid.
    """
    creds = cache.get(device_id)
    if creds is None:
        creds = _register(client, cache, device_id, agent_jwt, times, introspection)
    key_pem, cert_pem = creds.key_pem, creds.cert_pem
    if cert_pem is not None and revalidate:
        t0 = time.monotonic()
        try:
            valid = client.verify(device_id, creds.secret, cert_pem)
        except PairingError as exc:
            if exc.status not in (401, 403):
                raise
            # The target does not know this secret (a new backend on the same host): start over, once.
            cache.forget(device_id)
            creds = _register(client, cache, device_id, agent_jwt, times, introspection)
            key_pem = cert_pem = None
            valid = False
        times.extra["verify"] = time.monotonic() - t0
        if not valid:
            cert_pem = None
    if key_pem is None or cert_pem is None:
        t0 = time.monotonic()
        key = generate_key()
        cert_pem = client.obtain_certificate(device_id, creds.secret, key)
        key_pem = key_to_pem(key)
        times.certificate = time.monotonic() - t0
    broker_url = creds.broker_url
    if broker_url is None or revalidate:
        t0 = time.monotonic()
        broker_url = client.info(device_id, creds.secret)
        times.pairing_info = time.monotonic() - t0
    out = DeviceCredentials(creds.secret, key_pem, cert_pem, broker_url)
    if out != creds:
        cache.put(device_id, out)
    return out
