"""pairing_http against scripted loopback servers: the request bytes are requests' own, the answers are read
as HTTP/1.1 says (lengths, chunks, encodings, interim answers, closes), and connections are kept and reused."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from simulator.transports.pairing_client import PairingClient
from simulator.transports.pairing_http import HttpConnectionError, HttpsPool

HEADERS = dict(requests.utils.default_headers())


@dataclass
class Scripted:
    """Loopback HTTP server: each request gets the next scripted answer (bytes); `close_after` closes the
    connection after that answer. Records every request's raw bytes and the connections accepted."""

    answers: list[bytes]
    close_after: set[int] = field(default_factory=set)
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def start(self) -> int:
        self.sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                index = len(self.requests) - 1
                conn.sendall(self.answers[min(index, len(self.answers) - 1)])
                if index in self.close_after:
                    return

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[Scripted, str]]]:
    servers: list[Scripted] = []

    def make(answers: list[bytes], close_after: set[int] | None = None) -> tuple[Scripted, str]:
        s = Scripted(answers, close_after or set())
        servers.append(s)
        return s, f"http://127.0.0.1:{s.start()}"

    yield make
    for s in servers:
        s.stop()


def _json_answer(body: bytes = b'{"data": {"valid": true}}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def _headers(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = [(n.strip(), v.strip()) for n, _, v in (line.partition(b":") for line in lines[1:])]
    return lines[0], fields, body


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_the_request_bytes_are_those_requests_sends(scripted: Callable[..., tuple[Scripted, str]],
                                                    method: str) -> None:
    """The SDK calls requests.post/get(url, json=..., headers={"Authorization": ...}) (pairing_handler.py);
    the same call through PairingClient writes the same request line, header fields in the same order, and
    the same body."""
    server, url = scripted([_json_answer()])
    body = {"data": {"client_crt": "-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n"}}
    sent = body if method == "POST" else None
    path = "/devices/AAAAAAAAAAAAAAAAAAAAAA/protocols/astarte_mqtt_v1/credentials/verify"
    requests.request(method, f"{url}/pairing/v1/realm{path}", json=sent,
                     headers={"Authorization": "Bearer SECRET"}, timeout=5)
    client = PairingClient(f"{url}/pairing", "realm", None)
    client._send(method, path, "SECRET", sent)
    client.close()
    theirs, ours = (_headers(r) for r in server.requests)
    assert ours == theirs
    assert ours[0] == f"{method} /pairing/v1/realm{path} HTTP/1.1".encode()


def test_keep_alive_reuses_one_connection(scripted: Callable[..., tuple[Scripted, str]]) -> None:
    server, url = scripted([_json_answer()])
    pool = HttpsPool(url, None, 5.0, 4, HEADERS)
    for _ in range(5):
        assert pool.request("GET", "/x", {}).json() == {"data": {"valid": True}}
    assert server.connections == 1 and pool.opened == 1


@pytest.mark.parametrize("noticed", [True, False])
def test_a_connection_the_server_closed_while_idle_is_replaced(
        scripted: Callable[..., tuple[Scripted, str]], monkeypatch: pytest.MonkeyPatch, noticed: bool) -> None:
    """An idle timeout on the server (no `Connection: close` said): the next request goes on a new
    connection, without an error and without being sent twice -- whether the close is noticed before the
    request (`dropped`) or only when the request gets no answer (the close raced the look)."""
    from simulator.transports import pairing_http

    if not noticed:
        monkeypatch.setattr(pairing_http._Connection, "dropped", lambda self: False)
    server, url = scripted([_json_answer()], close_after={0, 1})
    pool = HttpsPool(url, None, 5.0, 4, HEADERS)
    for _ in range(3):
        assert pool.request("POST", "/x", {}, b"{}").status_code == 200
    assert len(server.requests) == 3 and server.connections == 3


def test_connection_close_is_honoured(scripted: Callable[..., tuple[Scripted, str]]) -> None:
    server, url = scripted([_json_answer(extra="Connection: close\r\n")], close_after={0})
    pool = HttpsPool(url, None, 5.0, 4, HEADERS)
    pool.request("GET", "/x", {})
    pool.request("GET", "/x", {})
    assert server.connections == 2


def test_chunked_gzip_interim_and_folded_answers(scripted: Callable[..., tuple[Scripted, str]]) -> None:
    packed = gzip.compress(b'{"data": {"valid": false}}')
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(packed[i:i + 7]), packed[i:i + 7])
                      for i in range(0, len(packed), 7))
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 422 Unprocessable Entity\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
               b"X-Folded: a\r\n b\r\nRetry-After: 1\r\nretry-after: 2\r\n\r\n" + chunks + b"0\r\nX-Trailer: t\r\n\r\n")
    server, url = scripted([chunked, _json_answer()])
    pool = HttpsPool(url, None, 5.0, 4, HEADERS)
    res = pool.request("GET", "/x", {})
    assert (res.status_code, res.reason) == (422, "Unprocessable Entity")
    assert res.json() == {"data": {"valid": False}}
    assert res.headers["x-folded"] == "a b" and res.headers["Retry-After"] == "1, 2"
    assert pool.request("GET", "/x", {}).status_code == 200  # the chunked answer was read whole: reusable
    assert server.connections == 1


def test_an_answer_without_length_is_read_to_the_end(scripted: Callable[..., tuple[Scripted, str]]) -> None:
    server, url = scripted([b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy"], close_after={0, 1})
    pool = HttpsPool(url, None, 5.0, 4, HEADERS)
    res = pool.request("GET", "/x", {})
    assert (res.status_code, res.content) == (503, b"busy")
    pool.request("GET", "/x", {})
    assert server.connections == 2  # not kept: the end of the stream was the end of the answer


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH\r\n\r\n",  # not HTTP
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ntoo short",  # closed mid-body
    b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}",  # conflicting lengths
    b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",  # not gzip
])
def test_broken_answers_are_connection_errors(scripted: Callable[..., tuple[Scripted, str]],
                                             answer: bytes) -> None:
    server, url = scripted([answer], close_after={0})
    pool = HttpsPool(url, None, 5.0, 4, HEADERS)
    with pytest.raises(HttpConnectionError):
        pool.request("GET", "/x", {})
    assert len(server.requests) == 1  # said once, not retried here (pairing_retry decides)


def test_the_pool_bounds_the_connections(scripted: Callable[..., tuple[Scripted, str]]) -> None:
    server, url = scripted([_json_answer()])
    pool = HttpsPool(url, None, 5.0, 2, HEADERS)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.extend(
        pool.request("GET", "/x", {}).status_code for _ in range(5))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 30
    assert server.connections == pool.opened <= 2


def test_through_a_proxy_the_calls_go_through_requests(scripted: Callable[..., tuple[Scripted, str]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """pairing_http connects only directly: with HTTP(S)_PROXY set for the pairing URL, requests speaks to
    the proxy (here the scripted server, which sees the absolute-form request line of a proxied call)."""
    proxy, proxy_url = scripted([_json_answer(b'{"data": {"protocols": {"astarte_mqtt_v1": '
                                              b'{"broker_url": "mqtts://b:8883/"}}}}')])
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    client = PairingClient("http://pairing.invalid:4003/pairing", "realm", None)
    assert client.info("AAAAAAAAAAAAAAAAAAAAAA", "SECRET") == "mqtts://b:8883/"
    client.close()
    line, fields, _ = _headers(proxy.requests[0])
    assert line == b"GET http://pairing.invalid:4003/pairing/v1/realm/devices/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1"
    assert (b"Authorization", b"Bearer SECRET") in fields and client.connections_opened == 0


def test_a_greenlet_killed_while_waiting_for_a_slot_leaves_the_pool_whole(
        scripted: Callable[..., tuple[Scripted, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Under gevent (as fleetsim runs), the end of a run kills device drivers that may be waiting for a pooled
    connection: the pool must still count its slots right afterwards."""
    import gevent
    from gevent import monkey

    monkey_patched = monkey.is_module_patched
    monkeypatch.setattr(monkey, "is_module_patched", lambda name: name == "threading" or monkey_patched(name))
    server, url = scripted([_json_answer()])
    pool = HttpsPool(url, None, 5.0, 1, HEADERS)
    assert isinstance(pool._slots, gevent.lock.BoundedSemaphore)
    pool._slots.acquire()  # the only slot is busy
    waiter = gevent.spawn(pool.request, "GET", "/x", {})
    gevent.sleep(0)  # sleep-ok: one yield: the waiter runs up to the busy slot and blocks there
    assert not waiter.ready()  # waiting for the slot
    waiter.kill()
    pool._slots.release()
    assert pool.request("GET", "/x", {}).status_code == 200
    assert pool._slots.counter == 1 and len(server.requests) == 1


def test_an_unreadable_ca_file_is_one_clear_error(tmp_path: Path) -> None:
    """A CA file that cannot be read: one error naming it, when the client is made (no traceback)."""
    from simulator.errors import UsageError

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(UsageError) as err:
            PairingClient("https://127.0.0.1:1/pairing", "realm", str(path))
        assert str(err.value).startswith(f"{path}: cannot be read as a CA bundle for the Pairing API: ")
