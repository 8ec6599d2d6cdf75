"""tls_stream and pairing_http's native HTTPS path, with real TLS on loopback and a LocalCA: the same bytes and
TLS parameters as the ssl.SSLSocket path, keep-alive, a wrong CA refused, a client certificate seen by the
server, a silent server timed out."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from simulator.backend.ca import LocalCA
from simulator.transports import tls_stream
from simulator.transports.pairing_client import tls_context
from simulator.transports.pairing_http import HttpConnectionError, HttpsPool, HttpTimeout

HEADERS = dict(requests.utils.default_headers())
BODY = b'{"data": {"valid": true}}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


@dataclass
class TlsServer:
    """Loopback HTTPS: answers ANSWER to each request (none when `silent`); records the raw requests, the
    TLS version, ALPN protocol, server name and client certificate subject of each connection."""

    ctx: ssl.SSLContext
    silent: bool = False
    requests: list[bytes] = field(default_factory=list)
    seen: list[tuple[str | None, str | None, str | None, object]] = field(default_factory=list)

    def start(self) -> int:
        self.names: list[str | None] = []
        self.ctx.sni_callback = lambda sock, name, ctx: self.names.append(name)
        self.sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                self.seen.append((tls.version(), tls.selected_alpn_protocol(),
                                  self.names[-1] if self.names else None, peer))
                buf = b""
                while True:
                    data = tls.recv(65536)
                    if not data:
                        return
                    buf += data
                    while b"\r\n\r\n" in buf:
                        head, _, rest = buf.partition(b"\r\n\r\n")
                        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length:")), 0)
                        if len(rest) < length:
                            break
                        self.requests.append(head + b"\r\n\r\n" + rest[:length])
                        buf = rest[length:]
                        if not self.silent:
                            tls.sendall(ANSWER)
        except (OSError, ssl.SSLError):
            pass

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    authority = LocalCA(tmp_path / "ca")
    authority.ensure()
    return authority


def _server_ctx(ca: LocalCA, client_certs: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = ca.server_cert()
    ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["http/1.1"])
    if client_certs:
        ctx.load_verify_locations(str(ca.ca_cert_path))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
def https(ca: LocalCA) -> Iterator[TlsServer]:
    server = TlsServer(_server_ctx(ca))
    server.start()
    yield server
    server.stop()


def _pool(server: TlsServer, ca_file: str, native: bool, timeout_s: float = 5.0) -> HttpsPool:
    return HttpsPool(f"https://127.0.0.1:{server.sock.getsockname()[1]}", tls_context(ca_file), timeout_s, 4,
                     HEADERS, native=native)


def test_native_https_sends_what_the_sslsocket_path_sends(https: TlsServer, ca: LocalCA) -> None:
    """Same request bytes, TLS version, ALPN and server name through both paths; keep-alive keeps one
    connection for several calls."""
    for native in (False, True):
        pool = _pool(https, str(ca.ca_cert_path), native)
        for _ in range(3):
            res = pool.request("POST", "/v1/r/devices/D/verify", {"Authorization": "Bearer S"}, BODY)
            assert (res.status_code, res.json()) == (200, {"data": {"valid": True}})
        assert pool.opened == 1
        pool.close()
    assert len(https.requests) == 6 and len(set(https.requests)) == 1
    classic, native_seen = https.seen
    assert classic[:3] == native_seen[:3] == ("TLSv1.3", "http/1.1", None)  # an IP address is sent no SNI


def test_native_https_refuses_a_server_from_another_ca(https: TlsServer, tmp_path: Path) -> None:
    other = LocalCA(tmp_path / "other")
    other.ensure()
    pool = _pool(https, str(other.ca_cert_path), native=True)
    with pytest.raises(HttpConnectionError) as info:
        pool.request("GET", "/x", {})
    assert info.value.tls and "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert https.requests == []


def test_the_server_sees_the_client_certificate(ca: LocalCA) -> None:
    """tls_stream.connect with a context holding a client certificate (as a device's): the server, which
    requires one from the CA, sees its subject."""
    server = TlsServer(_server_ctx(ca, client_certs=True))
    port = server.start()
    try:
        cert, key = ca.issue_client_cert("realm/QUJDREVGR0hJSktMTU5PUA")
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca.ca_cert_path))
        ctx.load_cert_chain(str(cert), str(key))
        stream = tls_stream.connect(socket.create_connection(("127.0.0.1", port)), ctx, "127.0.0.1", 5.0)
        stream.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert stream.version() == "TLSv1.3"
        stream.close()
        subject = server.seen[0][3]
        assert isinstance(subject, dict)
        assert (("commonName", "realm/QUJDREVGR0hJSktMTU5PUA"),) in subject["subject"]
    finally:
        server.stop()


def test_a_client_without_certificate_is_refused_where_one_is_required(ca: LocalCA) -> None:
    server = TlsServer(_server_ctx(ca, client_certs=True))
    port = server.start()
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca.ca_cert_path))
        stream = tls_stream.connect(socket.create_connection(("127.0.0.1", port)), ctx, "127.0.0.1", 5.0)
        # TLS 1.3: the client finishes its handshake before the server checks its (missing) certificate;
        # the refusal comes as an alert on the first read.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            stream.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if stream.recv(65536) == b"":
                raise ConnectionResetError("closed without an answer")
        stream.close()
        assert server.seen == []
    finally:
        server.stop()


def test_a_silent_server_times_out(ca: LocalCA) -> None:
    server = TlsServer(_server_ctx(ca), silent=True)
    server.start()
    try:
        pool = _pool(server, str(ca.ca_cert_path), native=True, timeout_s=0.2)
        with pytest.raises(HttpTimeout):
            pool.request("GET", "/x", {})
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_the_pool_goes_native_only_under_gevent() -> None:
    """The generator (gevent-patched) gets tls_stream; plain threads keep ssl.SSLSocket."""
    import subprocess
    import sys

    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import ssl\n"
            "from simulator.transports.pairing_http import HttpsPool\n"
            "print(HttpsPool('https://127.0.0.1:1', ssl.create_default_context(), 1.0, 1, {}).native)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True"
    assert HttpsPool("https://127.0.0.1:1", ssl.create_default_context(), 1.0, 1, {}).native is False
