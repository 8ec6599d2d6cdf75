"""A minimal HTTP/1.1 client over a pool of kept-alive HTTPS connections, for the devices' Pairing API calls.

Why: when every OTA operation reboots its device, each reconnect makes the SDK's two Pairing API calls (verify +
info). Through `requests` (PreparedRequest, urllib3's pool and HTTPResponse, http.client's email-based header
parser) a call cost ~1 ms of generator CPU, 11% of a reboot-every-operation campaign
(bench/campaign_capacity.py --profile); this client does the same call in a fifth to a tenth of that
(bench/tls_costs.py `pairing_call_us`; the figures are in simulator.transports.pairing_client).

What goes on the wire is what requests 2.x over urllib3 2.x sends for the SDK's calls
(astarte/device/pairing_handler.py): the request line, `Host` (with the port when it is not the scheme's
default), requests' default headers in their order (User-Agent, Accept-Encoding, Accept, Connection:
keep-alive), the call's own (Authorization), then Content-Length and Content-Type for a JSON body; TCP_NODELAY
as urllib3 sets it; the TLS context is urllib3's own (`create_urllib3_context`: TLS >= 1.2, no compression, no
session tickets) with ALPN `http/1.1`, as urllib3 offers it.

What it reads (RFC 9112): the status line, header fields (folded lines joined, repeated fields joined with
", "), 1xx interim responses skipped, the body by Content-Length, chunked transfer coding or (no length) up to
the end of the stream; a Content-Encoding among those requests advertises (gzip, deflate, br) is decoded. A
connection goes back to the pool only when the response was read whole and neither side asked to close it; a
pooled connection the server has closed meanwhile (idle timeout) is noticed before reuse and replaced.

Blocking calls on the stdlib socket and ssl modules: under gevent's monkey patching they wait cooperatively.
Under gevent an HTTPS connection skips gevent's ssl wrappers: after the TCP connect (gevent's), the handshake
and every read and write go to OpenSSL's socket object, waiting with gevent's wait_read/wait_write
(simulator.transports.tls_stream: 83-113 -> 74-86 µs of CPU per call; same context, same bytes on the wire).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import gevent.lock
from gevent import monkey

from simulator.transports import tls_stream

__all__ = ["Headers", "HttpConnectionError", "HttpResponse", "HttpTimeout", "HttpsPool"]

# The unpatched poll: a zero-timeout look at an idle pooled socket (gevent removes select.poll when it
# patches; a poll with timeout 0 never blocks, and select() would fail on descriptors >= 1024).
_poll = cast(Any, monkey.get_original("select", "poll"))
_POLLIN = 0x001
_MAX_HEAD = 64 * 1024  # bytes of status line + header fields; the Pairing API sends < 1 KiB
_MAX_BODY = 4 * 1024 * 1024  # bytes; a Pairing API body is < 4 KiB (a certificate)
_RECV = 65536


class HttpConnectionError(ConnectionError):
    """No usable answer: cannot connect, the TLS handshake failed (`tls`), the connection broke, or the
    answer was not HTTP/1.x."""

    def __init__(self, message: str, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


class HttpTimeout(TimeoutError):
    """Connecting, the TLS handshake, sending or waiting for the answer took longer than the timeout."""


class _Stale(Exception):
    """A reused connection closed by the server before sending a byte: the request goes on a new one."""


class Headers(Mapping[str, str]):
    """Response header fields, looked up case-insensitively (as requests' CaseInsensitiveDict)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-cased names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


@dataclass(frozen=True)
class HttpResponse:
    """One complete answer (the body is read whole before the connection goes back to the pool)."""

    status_code: int
    reason: str
    headers: Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError (json.JSONDecodeError) when it is not."""
        import json

        return json.loads(self.content)

    def close(self) -> None:
        """Nothing to release (pairing_retry closes an answer before waiting to retry)."""


def _decode(body: bytes, coding: str) -> bytes:
    """Undo a Content-Encoding that requests advertises (gzip, deflate, br); identity passes through."""
    for one in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if one in ("gzip", "x-gzip"):
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        elif one == "deflate":  # RFC 9110 says zlib-wrapped; some servers send raw deflate (urllib3 accepts both)
            try:
                body = zlib.decompress(body)
            except zlib.error:
                body = zlib.decompress(body, -zlib.MAX_WBITS)
        elif one == "br":
            import brotli  # type: ignore[import-untyped]  # requests advertises br only when it is installed

            try:
                body = brotli.decompress(body)
            except brotli.error as exc:
                raise ValueError(f"not brotli: {exc}") from exc
        elif one != "identity":
            raise HttpConnectionError(f"unsupported Content-Encoding {coding!r}")
    return body


class _Connection:
    """One kept-alive socket and the bytes read past the last answer (none on a healthy connection)."""

    __slots__ = ("buf", "got", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.got = 0  # bytes received for the current answer: 0 = the server said nothing yet

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def dropped(self) -> bool:
        """The idle connection has something to read: the server closed it (FIN or close_notify) or sent
        what nobody asked for. Either way it cannot carry the next request."""
        if self.buf:
            return True
        try:
            fd = self.sock.fileno()
            if fd < 0:
                return True
            p = _poll()
            p.register(fd, _POLLIN)
            return bool(p.poll(0))
        except (OSError, ValueError):
            return True

    def _more(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            if self.got == 0:
                raise _Stale
            raise HttpConnectionError("the server closed the connection in the middle of an answer")
        self.got += len(data)
        self.buf += data

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            if len(self.buf) > _MAX_HEAD:
                raise HttpConnectionError(f"answer line longer than {_MAX_HEAD} bytes")
            self._more()

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _head(self) -> tuple[str, int, str, dict[str, str]]:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > _MAX_HEAD:
                raise HttpConnectionError(f"answer head longer than {_MAX_HEAD} bytes")
            self._more()
        lines = bytes(self.buf[:end]).decode("iso-8859-1").split("\r\n")
        del self.buf[:end + 4]
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise HttpConnectionError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        fields: dict[str, str] = {}
        last = ""
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and last:  # obsolete line folding (RFC 9112 5.2)
                fields[last] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpConnectionError(f"malformed header field: {line[:80]!r}")
            last = name.lower()
            value = value.strip()
            fields[last] = f"{fields[last]}, {value}" if last in fields else value
        return version, int(code), reason, fields

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self._line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpConnectionError(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                while self._line():  # trailer fields, up to the empty line
                    pass
                return bytes(body)
            if len(body) + size > _MAX_BODY:
                raise HttpConnectionError(f"answer body over {_MAX_BODY} bytes")
            body += self._exactly(size)
            if self._exactly(2) != b"\r\n":
                raise HttpConnectionError("chunk not followed by CRLF")

    def _to_end(self) -> bytes:
        while True:
            try:
                self._more()
            except HttpConnectionError:
                return self._exactly(len(self.buf))
            if len(self.buf) > _MAX_BODY:
                raise HttpConnectionError(f"answer body over {_MAX_BODY} bytes")

    def exchange(self, request: bytes, method: str) -> tuple[HttpResponse, bool]:
        """Send `request`, read its answer; (answer, whether the connection may carry another request)."""
        self.got = 0
        self.sock.sendall(request)
        version, status, reason, fields = self._head()
        while 100 <= status < 200:  # interim answers (100 Continue, 103 Early Hints): the real one follows
            version, status, reason, fields = self._head()
        tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
        keep = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in fields:
            lengths = {v.strip() for v in fields["content-length"].split(",")}
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise HttpConnectionError(f"bad Content-Length {fields['content-length']!r}")
            length = int(next(iter(lengths)))
            if length > _MAX_BODY:
                raise HttpConnectionError(f"answer body over {_MAX_BODY} bytes")
            body = self._exactly(length)
        else:
            body = self._to_end()
            keep = False
        if "content-encoding" in fields:
            try:
                body = _decode(body, fields["content-encoding"])
            except (zlib.error, ValueError) as exc:
                raise HttpConnectionError(f"cannot decode a {fields['content-encoding']} body: {exc}") from exc
        return HttpResponse(status, reason, Headers(fields), body), keep and not self.buf


def _slots(size: int) -> Any:
    """The semaphore bounding the connections in use. gevent's once threading is monkey-patched: a greenlet
    killed while it waits for a slot (a run's end kills the device drivers, gevent.killall) leaves it whole,
    whereas threading.BoundedSemaphore's Condition, interrupted while it takes its lock back, releases a lock
    it does not hold (RuntimeError "Semaphore released too many times", seen at the end of saturated campaign
    runs, bench/campaign_capacity.py --rates). Plain threads (the CLI, tests) get threading's."""
    if monkey.is_module_patched("threading"):
        return gevent.lock.BoundedSemaphore(size)
    return threading.BoundedSemaphore(size)


class HttpsPool:
    """Keep-alive connections to one origin (`url`'s scheme, host and port), at most `size` at once.

    A call finding every connection busy waits for one (cooperatively under gevent) instead of opening an
    extra one: no connection is opened only to be thrown away. Safe for threads and greenlets.

    `native`: HTTPS on OpenSSL's socket object (tls_stream) rather than ssl.SSLSocket; by default when gevent
    has patched `socket` (the generator). Plain threads keep ssl.SSLSocket: tls_stream waits on the calling
    thread's gevent hub, which a thread of the CLI does not otherwise have."""

    def __init__(self, url: str, ctx: ssl.SSLContext | None, timeout_s: float, size: int,
                 headers: Mapping[str, str], native: bool | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if parts.scheme == "https" and ctx is None:
            raise ValueError("an https URL needs a TLS context")
        default = 443 if parts.scheme == "https" else 80
        self.host = parts.hostname
        self.port = parts.port or default
        self.ctx = ctx if parts.scheme == "https" else None
        self.timeout_s = timeout_s
        self.native = monkey.is_module_patched("socket") if native is None else native
        # Host as urllib3 writes it: the port only when it is not the scheme's default; IPv6 in brackets.
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_field = host if self.port == default else f"{host}:{self.port}"
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._slots = _slots(size)
        self._idle: list[_Connection] = []  # list.append/pop are atomic: no lock needed
        self.opened = 0  # connections opened so far (tests: keep-alive really keeps)
        self._closed = False

    def _connect(self) -> _Connection:
        where = f"{self.host}:{self.port}"
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except TimeoutError:
            raise HttpTimeout(f"connecting to {where}: no answer within {self.timeout_s} s") from None
        except OSError as exc:
            raise HttpConnectionError(f"cannot connect to {where}: {exc}") from exc
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ctx is None:
                sock: Any = raw
            elif self.native:
                sock = tls_stream.connect(raw, self.ctx, self.host, self.timeout_s)
            else:
                sock = self.ctx.wrap_socket(raw, server_hostname=self.host)
        except TimeoutError:
            raw.close()
            raise HttpTimeout(f"TLS handshake with {where}: not done within {self.timeout_s} s") from None
        except ssl.SSLError as exc:
            raw.close()
            raise HttpConnectionError(f"TLS handshake with {where}: {exc}", tls=True) from exc
        except OSError as exc:
            raw.close()
            raise HttpConnectionError(f"TLS handshake with {where}: {exc}") from exc
        self.opened += 1
        return _Connection(sock)

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None,
                content_type: str = "application/json") -> HttpResponse:
        """One request on a pooled connection; raises HttpConnectionError or HttpTimeout (never a bare
        OSError). `headers` come after the pool's fixed ones (requests' order: session, then call)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host_field}\r\n{self._fixed}"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            head += f"Content-Length: {len(body)}\r\nContent-Type: {content_type}\r\n"
        elif method not in ("GET", "HEAD"):  # requests (prepare_content_length) says "no body" with a zero length
            head += "Content-Length: 0\r\n"
        request = (head + "\r\n").encode("latin-1") + (body or b"")
        with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is not None and conn.dropped():
                conn.close()
                conn = None
            reused = conn is not None
            if conn is None:
                conn = self._connect()
            try:
                try:
                    res, keep = conn.exchange(request, method)
                except (_Stale, BrokenPipeError, ConnectionResetError) as exc:
                    # A pooled connection the server closed between our look and our request: it never saw
                    # the request (not a byte came back), so it goes once on a new connection.
                    if not reused or conn.got:
                        raise HttpConnectionError(
                            "the server closed the connection without answering") from exc
                    conn.close()
                    conn = self._connect()
                    res, keep = conn.exchange(request, method)
            except _Stale:
                conn.close()
                raise HttpConnectionError("the server closed the connection without answering") from None
            except TimeoutError:
                conn.close()
                raise HttpTimeout(f"{method} {path}: no answer within {self.timeout_s} s") from None
            except HttpConnectionError:
                conn.close()
                raise
            except ssl.SSLError as exc:
                conn.close()
                raise HttpConnectionError(f"{method} {path}: TLS error: {exc}", tls=True) from exc
            except OSError as exc:
                conn.close()
                raise HttpConnectionError(f"{method} {path}: {exc}") from exc
            except BaseException:  # the greenlet killed mid-answer (GreenletExit, gevent.Timeout): not reusable
                conn.close()
                raise
            if keep and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()
            return res

    def close(self) -> None:
        """Close the idle connections (busy ones close when their call ends and finds the pool closed)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
