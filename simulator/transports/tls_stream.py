"""A request/response TLS stream on OpenSSL's socket object, waiting cooperatively: the Pairing API's connections.

Why: under gevent's monkey patching a `recv`/`sendall` on an `ssl.SSLSocket` runs through gevent.ssl's Python
wrappers (read, recv, send, sendall, _sslobj checks, timeout bookkeeping), and every reboot of an OTA campaign
makes two Pairing API calls (pairing_http). In a gevent-patched process, a verify-sized POST on a kept-alive
connection to an HTTPS server in another process costs 83-113 µs of CPU through ssl.SSLSocket and 74-86 µs
here (bench/pairing_pool_gevent.py, median of 5 rounds of 500 calls, A/B interleaved, two invocations at load
average ~10, 2026-12-07; issue 16): 20-55 µs per reboot, a small cut. Without gevent (plain threads)
ssl.SSLSocket blocks in the kernel and is the cheaper one (bench/tls_costs.py `pairing_pool_us`: 148 vs
264 µs), hence pairing_http uses this only under gevent.
Here a call is one `write` and a `read` or two on the `_ssl._SSLSocket` (native_tls.TlsSocket), waiting with
gevent's hub (fd_wait, on io watchers kept for the connection's life) only when OpenSSL says it must
(SSLWantRead/WriteError).

On the wire nothing changes: the handshake is native_tls.handshake with the caller's context (the one
urllib3 builds: TLS >= 1.2, ALPN http/1.1, server name and certificate checked against the CA), the bytes
written are the caller's. Timeouts: a `recv` or `sendall` that waits for the peer longer than `timeout_s` in all
raises TimeoutError, as a socket with a timeout does (pairing_http turns it into HttpTimeout).
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from simulator.transports import fd_wait, native_tls

__all__ = ["TlsStream", "connect"]


class TlsStream:
    """recv / sendall / fileno / close over a native_tls.TlsSocket, each blocking only the calling greenlet."""

    __slots__ = ("_reader", "_tls", "_writer", "timeout_s")

    def __init__(self, tls: native_tls.TlsSocket, timeout_s: float | None) -> None:
        self._tls = tls
        self.timeout_s = timeout_s
        # io watchers kept for the connection's life, made at its first wait (fd_wait: why).
        self._reader: Any = None
        self._writer: Any = None

    def recv(self, bufsize: int) -> bytes:
        """Up to `bufsize` decrypted bytes, waiting for them; b"" at the end of the stream."""
        deadline = None
        while True:
            try:
                return self._tls.recv(bufsize)
            except ssl.SSLWantReadError:
                deadline = self._wait(fd_wait.READ, deadline)
            except ssl.SSLWantWriteError:  # a TLS 1.3 KeyUpdate answer that did not fit in the send buffer
                deadline = self._wait(fd_wait.WRITE, deadline)

    def sendall(self, data: bytes) -> None:
        """All of `data`. OpenSSL's object is in `SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER` without partial writes
        (CPython's _ssl.c): a write either takes the whole record set or asks to be retried with the same
        bytes after SSLWantWrite/ReadError."""
        view = memoryview(data)
        deadline = None
        while view:
            try:
                sent = self._tls.send(view)
            except ssl.SSLWantWriteError:
                deadline = self._wait(fd_wait.WRITE, deadline)
                continue
            except ssl.SSLWantReadError:
                deadline = self._wait(fd_wait.READ, deadline)
                continue
            view = view[sent:]

    def fileno(self) -> int:
        return self._tls.fileno()

    def version(self) -> str | None:
        return self._tls.version()

    def getpeercert(self) -> Any:
        return self._tls.getpeercert()

    def close(self) -> None:
        for watcher in (self._reader, self._writer):  # before the descriptor goes (libev)
            if watcher is not None:
                watcher.close()
        self._reader = self._writer = None
        self._tls.close()

    def _wait(self, events: int, deadline: float | None) -> float | None:
        """Wait for the descriptor (fd_wait.READ / WRITE) until `deadline` (set at the first wait of an
        operation); TimeoutError past it."""
        if events == fd_wait.READ:
            if self._reader is None:
                self._reader = fd_wait.io_watcher(self._tls.fileno(), fd_wait.READ)
            watcher = self._reader
        else:
            if self._writer is None:
                self._writer = fd_wait.io_watcher(self._tls.fileno(), fd_wait.WRITE)
            watcher = self._writer
        if self.timeout_s is None:
            fd_wait.wait(watcher, None, TimeoutError())
            return None
        if deadline is None:
            deadline = time.monotonic() + self.timeout_s
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no progress within {self.timeout_s} s")
        fd_wait.wait(watcher, left, TimeoutError(f"no progress within {self.timeout_s} s"))
        return deadline


def connect(tcp: Any, ctx: ssl.SSLContext, server_hostname: str, timeout_s: float | None) -> TlsStream:
    """TLS over the connected TCP socket `tcp` (taken over; closed on failure): native_tls.handshake with
    `ctx` as it is (its own certificate if any), within `timeout_s`. Raises as native_tls.handshake."""
    return TlsStream(native_tls.handshake(tcp, ctx, server_hostname, timeout_s, None), timeout_s)
