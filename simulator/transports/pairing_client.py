"""Device side of the Astarte Pairing API v1: register, ask for a certificate, verify it, get the broker URL.

Same requests, bodies and key/CSR as astarte-device-sdk 0.14.0 (astarte/device/pairing_handler.py, crypto.py;
docs/protocol.md section 2): base URL `<pairing_url>/v1/<realm>`, `Bearer <agent JWT>` for registration and
`Bearer <credentials secret>` for the device calls; key EC P-256 (SECP256R1), CSR subject `O=Devices,
CN=<realm>/<device_id>` signed with SHA-256. The SDK sends them with `requests`; here they go through
pairing_http, a minimal HTTP/1.1 client writing the same request bytes (request line, headers in requests'
order, JSON body as requests serialises it) over a pool of keep-alive HTTPS connections with urllib3's TLS
settings. Why not requests: when every OTA operation reboots, each reconnect makes verify + info, and through
requests a call cost ~1 ms of generator CPU (11% of a reboot-every-operation campaign,
bench/campaign_capacity.py --profile). bench/tls_costs.py, both clients in one invocation (5 rounds, load
average 4.5-5.8, no gevent; bench/results/tls_costs.json): verify 933 -> 210 us, info 801 -> 89 us per call
(requests' HTTPAdapter -> pairing_http, kept-alive HTTPS). The SDK opens a connection per call; a load
generator should not spend its CPU on TCP/TLS setup to the pairing API, so connections are kept alive, one per
concurrent call.

When the environment routes the pairing URL through a proxy (HTTPS_PROXY / NO_PROXY, read once here), the
calls go through requests' HTTPAdapter instead, which speaks CONNECT: pairing_http connects only directly.
The CA bundle follows requests' rules: `ca_file`, else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, else certifi's.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3.util.ssl_
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.errors import UsageError
from simulator.records import OnboardingTimes
from simulator.transports.credentials import CredentialsCache, DeviceCredentials
from simulator.transports.pairing_http import HttpsPool
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


class _Answer(Protocol):
    """What both senders return (requests.Response, pairing_http.HttpResponse)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...

    def close(self) -> None: ...


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The client context urllib3 2.x builds for requests' `verify` (False, a CA bundle path, or True: the
    default bundle), with urllib3's ALPN offer: the Pairing API sees the ClientHello the SDK's requests sends."""
    if verify is False:
        ctx = urllib3.util.ssl_.create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    else:
        ctx = urllib3.util.ssl_.create_urllib3_context()
        where = requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        try:  # a directory is a c_rehash'ed CA dir, as requests' HTTPAdapter.cert_verify treats it
            if os.path.isdir(where):
                ctx.load_verify_locations(capath=where)
            else:
                ctx.load_verify_locations(cafile=where)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"{where}: cannot be read as a CA bundle for the Pairing API: {exc}") from None
    ctx.set_alpn_protocols(urllib3.util.ssl_.ALPN_PROTOCOLS)
    return ctx


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


def _detail(res: _Answer) -> str:
    try:
        body: Any = res.json()
    except ValueError:
        return res.text[:200] or str(getattr(res, "reason", "") or "")
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
        self._path = urlsplit(self.base).path
        self.timeout_s = timeout_s
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep  # time.sleep: a greenlet switch under gevent; tests pass a recorder
        # requests' `verify`: False (ignore errors, as the SDK does), a CA bundle, or the default bundle.
        self._verify: bool | str = False if ignore_ssl_errors else (ca_file or True)
        if self._verify is True:  # what Session.merge_environment_settings does with verify=True
            self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies = requests.utils.get_environ_proxies(self.base)
        self._pool: HttpsPool | None = None
        self._adapter: requests.adapters.HTTPAdapter | None = None
        if self._proxies.get(urlsplit(self.base).scheme) or self._proxies.get("all"):
            # pool_block: a call finding every pooled connection busy waits for one instead of opening an
            # extra one that the full pool then throws away ("Connection pool is full").
            self._adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size,
                                                          pool_block=True)
        else:
            ctx = tls_context(self._verify) if self.base.startswith("https:") else None
            self._pool = HttpsPool(self.base, ctx, timeout_s, pool_size, _HEADERS)

    @property
    def connections_opened(self) -> int:
        """Connections opened so far by the direct pool (0 through a proxy): tests check keep-alive."""
        return self._pool.opened if self._pool is not None else 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._adapter is not None:
            self._adapter.close()

    def _send(self, method: str, path: str, bearer: str, body: Mapping[str, Any] | None) -> _Answer:
        """One HTTP exchange, no retries. The JSON body as requests' `json=` writes it (json.dumps defaults,
        allow_nan=False, UTF-8)."""
        data = json.dumps(body, allow_nan=False).encode() if body is not None else None
        auth = {"Authorization": f"Bearer {bearer}"}
        if self._pool is not None:
            return self._pool.request(method, self._path + path, auth, data)
        assert self._adapter is not None
        prepared = requests.Request(method, self.base + path, data=data,
                                    headers={**_HEADERS, **auth, **({"Content-Type": "application/json"}
                                                                    if data is not None else {})}).prepare()
        res = self._adapter.send(prepared, timeout=self.timeout_s, verify=self._verify, proxies=self._proxies)
        _ = res.content  # read it all, as Session.send does: the connection goes back to the pool now
        return res

    def _call(
        self, phase: str, method: str, path: str, bearer: str, body: Mapping[str, Any] | None, ok: int
    ) -> Any:
        url = self.base + path
        try:
            # 429, 5xx and connection errors are retried with backoff and jitter (pairing_retry: numbers, why).
            res = send_with_retries(phase, lambda: self._send(method, path, bearer, body),
                                    policy=self.retry_policy, sleep=self._sleep)
        except (requests.exceptions.Timeout, TimeoutError) as exc:
            raise PairingError(phase, url, None, f"timed out after {self.timeout_s} s") from exc
        except (requests.exceptions.ConnectionError, ConnectionError) as exc:
            if isinstance(exc, requests.exceptions.SSLError) or getattr(exc, "tls", False):
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
        path = f"/agent/devices/{device_id}"
        url = self.base + path
        try:
            res = self._send("DELETE", path, agent_jwt, None)
        except (requests.exceptions.RequestException, TimeoutError, ConnectionError) as exc:
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
