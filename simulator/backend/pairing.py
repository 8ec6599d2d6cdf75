"""Pairing API v1, as astarte-device-sdk 0.14.0 calls it, over HTTPS on loopback.

Routes under `/pairing/v1/<realm>` (docs/protocol.md section 2; URLs, headers and JSON shapes checked against
astarte/device/pairing_handler.py and device_mqtt.py of the SDK):

  POST   /agent/devices                               JWT (a_pa)  {"data":{"hw_id"}} -> 201 credentials_secret
  DELETE /agent/devices/<id>                          JWT         -> 204
  GET    /devices/<id>                                secret      -> 200 version, status, broker_url
  POST   /devices/<id>/protocols/astarte_mqtt_v1/credentials         {"data":{"csr"}} -> 201 client_crt
  POST   /devices/<id>/protocols/astarte_mqtt_v1/credentials/verify  {"data":{"client_crt"}} -> 200 valid...

Errors are `{"errors": {...}}` with 400/401/403/404/422. Registering a device again is allowed (a fresh
secret) until it has asked for its first certificate, then 422 "device already registered" --
astarte_pairing's engine.ex `register_device` does the same. Secrets are 32 random bytes, base64; only their
SHA-256 is kept, in memory and in `devices-<realm>.jsonl` (simulator.backend.registry) so that cached SDK
credentials stay valid when the same state dir is reused. Per-request work is a dict lookup, one hash, and for
CSRs one EC signature (~0.2 ms). Measured on the shared 2-vCPU machine (load average ~10): 300 keep-alive
registrations from 8 threads in < 3 s; 1,000 SDK-style ones (a new TLS connection each, client in the same
process) in 8.6 s, most of it client-side.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from simulator.backend.ca import LocalCA
from simulator.backend.jwt_tokens import AgentTokens
from simulator.backend.registry import DeviceRegistry, is_device_id

__all__ = ["ASTARTE_VERSION", "DeviceRegistry", "PairingServer", "is_device_id"]

# The Astarte version the stand-in reports in GET /devices/<id> ("version"); the SDK ignores it.
ASTARTE_VERSION = "1.2.0"
_MAX_BODY = 64 * 1024  # bytes; a CSR is ~500 bytes, a certificate ~700
# Idle keep-alive connections are closed after this many seconds: Cowboy's default `idle_timeout` (60,000 ms),
# which the Pairing API (Phoenix on Cowboy) runs with. At 10 s a burst of reboots after a quiet spell found
# every pooled connection closed and re-handshook them (~15 % of the generator's reconnect CPU, py-spy of
# bench/campaign_capacity.py --profile on 2026-12-07).
_IO_TIMEOUT_S = 60.0


class _HttpError(Exception):
    def __init__(self, status: int, errors: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.route = "unknown"  # set by PairingServer.handle once the route is known


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer over TLS; the handshake runs in the handler thread, not in the accept loop."""

    request_queue_size = 1024  # listen() backlog: a fleet registers in bursts
    daemon_threads = False  # server_close() joins handler threads: stop() leaves no thread behind
    block_on_close = True
    app: PairingServer

    def __init__(self, addr: tuple[str, int], ctx: ssl.SSLContext) -> None:
        super().__init__(addr, _Handler)
        self._ctx = ctx
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # http.server writes headers and body separately: without TCP_NODELAY the body waits for the
        # client's delayed ACK (~40 ms on Linux), capping onboarding near 20 devices/s (measured by the sdk
        # transport's bench). One option, no protocol change.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self._ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._open_lock:
            self._open.add(tls)
        return tls, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A broken client connection is the client's problem: count it, print no traceback."""
        self.app.count("connection_error", failed=True)

    def close_open_connections(self) -> None:
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for clients that use a requests.Session
    timeout = _IO_TIMEOUT_S
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._tls_ok = True
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            self.server.app.count("tls_handshake", failed=True)
            self._tls_ok = False

    def handle(self) -> None:
        if not self._tls_ok:
            return
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a request line per registration would flood stderr, and headers carry secrets."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        route = "unknown"
        try:
            body = self._read_body()
            auth = self.headers.get("Authorization", "")
            route, status, payload = app.handle(method, self.path, auth, body)
        except _HttpError as err:
            route, status, payload = err.route, err.status, {"errors": err.errors}
        app.count(route, failed=status >= 400)
        data = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            raise _HttpError(413, {"detail": "Request Entity Too Large"})
        return self.rfile.read(length) if length > 0 else b""


def _data(body: bytes, field: str) -> Any:
    """`body["data"][field]`, or a 400/422 naming what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _HttpError(400, {"detail": "Bad Request: body is not JSON"}) from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or field not in data:
        raise _HttpError(422, {field: ["can't be blank"]})
    return data[field]


def _bearer(auth: str) -> str:
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _HttpError(401, {"detail": "Unauthorized"})
    return value.strip()


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PairingServer:
    """The Pairing API v1 on `https://<host>:<port>/pairing`; set `broker_url` before devices connect."""

    def __init__(
        self,
        ca: LocalCA,
        tokens: AgentTokens,
        realm: str,
        cert_file: Path,
        key_file: Path,
        broker_url: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        self.ca, self.tokens, self.realm, self.broker_url = ca, tokens, realm, broker_url
        self._host, self._port = host, port
        self._cert_file, self._key_file = cert_file, key_file
        self._journal = (state_dir / f"devices-{realm}.jsonl") if state_dir is not None else None
        self.registry = DeviceRegistry(None)
        self._prefix = f"/pairing/v1/{realm}/"
        self._stats_lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        """The SDK's `pairing_base_url`: the SDK appends `/v1/<realm>/...`."""
        return f"https://{self._host}:{self.port}/pairing"

    def start(self) -> str:
        if self._server is not None:
            return self.url
        self.registry = DeviceRegistry(self._journal)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self._cert_file), str(self._key_file))
        server = _Server((self._host, self._port), ctx)
        server.app = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="fleetsim-pairing", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()  # joins the handler threads
        if thread is not None:
            thread.join(5.0)
        self.registry.close()

    def count(self, route: str, failed: bool) -> None:
        with self._stats_lock:
            self._requests[route] += 1
            if failed:
                self._failures[route] += 1

    def stats(self) -> dict[str, dict[str, int]]:
        """{"requests": {route: n}, "failures": {route: n}, "devices": {"registered": n}}."""
        with self._stats_lock:
            return {
                "requests": dict(self._requests),
                "failures": dict(self._failures),
                "devices": {"registered": len(self.registry)},
            }

    # -- routing (pure: method, path, Authorization header, body -> route, status, JSON) ----------------

    def handle(self, method: str, path: str, auth: str, body: bytes) -> tuple[str, int, dict[str, Any]]:
        path = path.split("?", 1)[0]
        if not path.startswith(self._prefix):
            raise _HttpError(404, {"detail": "Not Found"})
        parts = path[len(self._prefix):].strip("/").split("/")
        call: Callable[[], tuple[int, dict[str, Any]]]
        match (method, parts):
            case ("POST", ["agent", "devices"]):
                route, call = "register", lambda: self._register(auth, body)
            case ("DELETE", ["agent", "devices", dev]):
                route, call = "unregister", lambda: self._unregister(auth, dev)
            case ("GET", ["devices", dev]):
                route, call = "device_info", lambda: self._info(auth, dev)
            case ("POST", ["devices", dev, "protocols", "astarte_mqtt_v1", "credentials"]):
                route, call = "credentials", lambda: self._credentials(auth, dev, body)
            case ("POST", ["devices", dev, "protocols", "astarte_mqtt_v1", "credentials", "verify"]):
                route, call = "verify", lambda: self._verify(auth, dev, body)
            case _:
                raise _HttpError(404, {"detail": "Not Found"})
        try:
            return route, *call()
        except _HttpError as err:
            err.route = route
            raise

    def _agent(self, auth: str, method: str, rel_path: str) -> None:
        verdict = self.tokens.authorise(_bearer(auth), method, rel_path)
        if verdict == "unauthorized":
            raise _HttpError(401, {"detail": "Unauthorized"})
        if verdict == "forbidden":
            raise _HttpError(403, {"detail": "Forbidden"})

    def _device(self, auth: str, dev: str) -> None:
        # A wrong secret and an unknown device look the same to the caller (astarte_pairing: 401 for both).
        if not self.registry.authenticate(dev, _bearer(auth)):
            raise _HttpError(401, {"detail": "Unauthorized"})

    def _register(self, auth: str, body: bytes) -> tuple[int, dict[str, Any]]:
        self._agent(auth, "POST", "agent/devices")
        hw_id = _data(body, "hw_id")
        if not is_device_id(hw_id):
            raise _HttpError(422, {"hw_id": ["is not a valid device id"]})
        secret = self.registry.register(hw_id)
        if secret is None:
            raise _HttpError(422, {"error_name": "device_already_registered"})
        return 201, {"data": {"credentials_secret": secret}}

    def _unregister(self, auth: str, dev: str) -> tuple[int, dict[str, Any]]:
        self._agent(auth, "DELETE", f"agent/devices/{dev}")
        if not self.registry.unregister(dev):
            raise _HttpError(404, {"detail": "Device not found"})
        return 204, {}

    def _info(self, auth: str, dev: str) -> tuple[int, dict[str, Any]]:
        self._device(auth, dev)
        return 200, {"data": {
            "version": ASTARTE_VERSION,
            "status": self.registry.status(dev),
            "protocols": {"astarte_mqtt_v1": {"broker_url": self.broker_url}},
        }}

    def _credentials(self, auth: str, dev: str, body: bytes) -> tuple[int, dict[str, Any]]:
        self._device(auth, dev)
        csr = _data(body, "csr")
        if not isinstance(csr, str):
            raise _HttpError(422, {"csr": ["is invalid"]})
        try:
            crt = self.ca.sign_csr(csr.encode(), f"{self.realm}/{dev}")
        except ValueError as exc:
            raise _HttpError(422, {"csr": [str(exc)]}) from None
        self.registry.confirm(dev)
        return 201, {"data": {"client_crt": crt.decode()}}

    def _verify(self, auth: str, dev: str, body: bytes) -> tuple[int, dict[str, Any]]:
        self._device(auth, dev)
        crt = _data(body, "client_crt")
        if not isinstance(crt, str):
            raise _HttpError(422, {"client_crt": ["is invalid"]})
        now = _iso(dt.datetime.now(dt.UTC))
        valid, cause = self.ca.verify_cert(crt.encode(), f"{self.realm}/{dev}")
        if not valid:
            return 200, {"data": {"valid": False, "timestamp": now, "cause": cause, "details": None}}
        _, until = LocalCA.validity_window(crt.encode())
        return 200, {"data": {"valid": True, "timestamp": now, "until": _iso(until)}}
