"""CPU of the reconnect path's pieces: certificate loading, TLS contexts, the handshake, a Pairing API call.

Issue 16: when every OTA operation reboots, each reconnect loads the device's certificate and key, does a full
mutual-TLS handshake with the broker, and calls the Pairing API twice (verify + info). This prints, as JSON,
the client-side CPU (time.thread_time of the calling thread: the servers run in other threads) of:

- `load_cert_chain_us`: `SSLContext.load_cert_chain` of one device's certificate + EC P-256 key, by file
  layout: the key as SEC1 (`EC PRIVATE KEY`, what the SDK writes) or PKCS#8, in its own file or with the
  certificate;
- `context_per_device`: what a per-device SSLContext (CA + certificate loaded once) costs to make and how many
  KB of RSS each keeps (`--contexts` of them, /proc/self/statm before and after);
- `handshake_us`: connect + mutual-TLS handshake + first byte + close against a local TLS server, with the
  certificate loaded per connection into one shared context (the lean transport) and with a per-device
  context;
- `pairing_call_us`: one verify + one info against the embedded backend's HTTPS Pairing API, through requests'
  HTTPAdapter (the client before issue 16) and through simulator.transports.pairing_http (after); and
  `pairing_pool_us`: the same two calls straight on pairing_http.HttpsPool, on ssl.SSLSocket (`sslsocket`,
  what plain threads use) and on OpenSSL's object through tls_stream (`native`, what the generator uses under
  gevent).

Each figure is the median of `--rounds` rounds; the machine's load average is printed with them.

    python bench/tls_costs.py [--rounds 5] [--contexts 2000]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import host_info, median, save_result

REALM = "tlscosts"


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    fn()
    t0 = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t0) / n * 1e6


def _rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


class _TlsServer:
    """Mutual TLS on loopback: handshake, one byte, wait for the client to close. Its own thread."""

    def __init__(self, ca: Path, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.ctx.load_verify_locations(str(ca))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"x")
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


def _connect_once(port: int, ctx: ssl.SSLContext, cert: tuple[str, str] | None) -> None:
    raw = socket.create_connection(("127.0.0.1", port))
    if cert is not None:
        ctx.load_cert_chain(*cert)  # the lean transport before issue 16: per connection, shared context
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        if tls.recv(1) != b"x":
            raise RuntimeError("no byte from the TLS server")


def _default_headers() -> dict[str, str]:
    import requests

    return dict(requests.utils.default_headers())


def _call(pool: Any, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
    res = pool.request(method, path, headers, body)
    if res.status_code != 200:
        raise RuntimeError(f"Pairing API answered {res.status_code}: {res.text[:200]}")


def _files(tmp: Path, cert_pem: bytes, key_pem: bytes) -> dict[str, tuple[str, str | None]]:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    sec1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    out: dict[str, tuple[str, str | None]] = {}
    for name, data in (("crt", cert_pem), ("sec1", sec1), ("pkcs8", pkcs8), ("both_sec1", cert_pem + sec1),
                       ("both_pkcs8", cert_pem + pkcs8)):
        (tmp / name).write_bytes(data)
    out["sec1_separate"] = (str(tmp / "crt"), str(tmp / "sec1"))
    out["pkcs8_separate"] = (str(tmp / "crt"), str(tmp / "pkcs8"))
    out["sec1_one_file"] = (str(tmp / "both_sec1"), None)
    out["pkcs8_one_file"] = (str(tmp / "both_pkcs8"), None)
    return out


def _requests_sender(base: str, ca: str) -> Callable[[str, str, str, dict[str, Any] | None], Any]:
    """The Pairing API call as the client did it before issue 16: requests' HTTPAdapter, no Session."""
    import requests

    headers = dict(requests.utils.default_headers())
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=4, pool_block=True)

    def send(method: str, path: str, bearer: str, body: dict[str, Any] | None) -> Any:
        prepared = requests.Request(method, base + path, json=body,
                                    headers={**headers, "Authorization": f"Bearer {bearer}"}).prepare()
        res = adapter.send(prepared, timeout=30, verify=ca, proxies={})
        _ = res.content
        return res.json()["data"]

    return send


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--contexts", type=int, default=2000)
    ap.add_argument("--out", default="tls_costs")
    args = ap.parse_args(argv)

    from simulator.backend.ca import LocalCA
    from simulator.backend.jwt_tokens import AgentTokens
    from simulator.backend.pairing import PairingServer
    from simulator.records import OnboardingTimes
    from simulator.transports.credentials import CredentialsCache
    from simulator.transports.pairing_client import PairingClient, onboard, tls_context
    from simulator.transports.pairing_http import HttpsPool

    host_before = host_info()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        ca = LocalCA(tmp / "ca")
        ca.ensure()
        srv_cert, srv_key = ca.server_cert()
        pairing = PairingServer(ca, AgentTokens(tmp / "ca"), REALM, srv_cert, srv_key,
                                broker_url="mqtts://127.0.0.1:8883/")
        pairing.start()
        tls_server = _TlsServer(ca.ca_cert_path, srv_cert, srv_key)
        try:
            ca_file = str(ca.ca_cert_path)
            client = PairingClient(pairing.url, REALM, ca_file, pool_size=4)
            cache = CredentialsCache(tmp / "creds", "t")
            dev = "QUJDREVGR0hJSktMTU5PUA"
            creds = onboard(client, cache, dev, pairing.tokens.issue_agent_token(), OnboardingTimes())
            assert creds.cert_pem is not None and creds.key_pem is not None
            files = _files(tmp, creds.cert_pem, creds.key_pem)

            shared = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
            rounds: dict[str, list[float]] = {}

            def sample(name: str, fn: Callable[[], object], n: int) -> None:
                rounds.setdefault(name, []).append(_per_call_us(fn, n))

            def per_device_ctx(pair: tuple[str, str | None] = files["sec1_separate"]) -> ssl.SSLContext:
                ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
                ctx.load_cert_chain(*pair)
                return ctx

            device_ctx = per_device_ctx()
            sec1 = files["sec1_separate"]
            sec1_pair = (sec1[0], sec1[1] or "")
            old = _requests_sender(client.base, ca_file)
            cert = creds.cert_pem.decode()
            pools = {name: HttpsPool(client.base, tls_context(ca_file), 30.0, 4, _default_headers(), native=flag)
                     for name, flag in (("sslsocket", False), ("native", True))}
            base_path = client.base[client.base.index("/", len("https://")):]
            auth = {"Authorization": f"Bearer {creds.secret}"}
            verify_body = json.dumps({"data": {"client_crt": cert}}).encode()
            for _ in range(args.rounds):
                for name, pair in files.items():
                    sample(f"load_cert_chain_us.{name}", lambda pair=pair: shared.load_cert_chain(*pair), 500)
                sample("context_per_device.create_us", per_device_ctx, 100)
                sample("handshake_us.shared_context_load_per_connection",
                       lambda: _connect_once(tls_server.port, shared, sec1_pair), 100)
                sample("handshake_us.per_device_context",
                       lambda: _connect_once(tls_server.port, device_ctx, None), 100)
                sample("pairing_call_us.requests.verify",
                       lambda: old("POST", f"/devices/{dev}/protocols/astarte_mqtt_v1/credentials/verify",
                                   creds.secret, {"data": {"client_crt": cert}}), 200)
                sample("pairing_call_us.requests.info", lambda: old("GET", f"/devices/{dev}", creds.secret,
                                                                    None), 200)
                sample("pairing_call_us.pairing_http.verify",
                       lambda: client.verify(dev, creds.secret, creds.cert_pem or b""), 200)
                sample("pairing_call_us.pairing_http.info", lambda: client.info(dev, creds.secret), 200)
                for name, pool in pools.items():
                    sample(f"pairing_pool_us.{name}.verify", functools.partial(
                        _call, pool, "POST", f"{base_path}/devices/{dev}/protocols/astarte_mqtt_v1/credentials/verify",
                        auth, verify_body), 200)
                    sample(f"pairing_pool_us.{name}.info", functools.partial(
                        _call, pool, "GET", f"{base_path}/devices/{dev}", auth, None), 200)
            before = _rss_kb()
            kept = [per_device_ctx() for _ in range(args.contexts)]
            kb_each = (_rss_kb() - before) / len(kept)
            del kept
            client.close()
            for pool in pools.values():
                pool.close()
        finally:
            tls_server.close()
            pairing.stop()
    doc: dict[str, Any] = {name: round(median(v), 1) for name, v in sorted(rounds.items())}
    doc["context_per_device.rss_kb_each"] = round(kb_each, 1)
    doc["rounds"] = args.rounds
    doc["host_before"] = host_before
    doc["host_after"] = host_info()
    print(json.dumps(doc, indent=2))
    save_result(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
