"""TLS for the lean transport straight on OpenSSL's socket object, with the handshake made cooperative by hand.

Why: under gevent's monkey-patching every `recv`/`send` of an `SSLSocket` goes through gevent.ssl's Python
wrappers (read, recv, send, pending: ~10% of the lean transport's CPU in bench/profile_hot_path.py at 1,000
devices, before a byte of MQTT is parsed). The lean transport never blocks on a socket -- paho's
`loop_read`/`loop_write` run on a non-blocking socket when the shared I/O loop (lean_loop) says it is ready --
so the cooperative wrappers buy nothing after the handshake.

How: the TCP connect stays cooperative (ports.open_connection: a plain non-blocking `socket.socket` whose
connect waits in gevent's hub; a gevent socket passed in gives its file descriptor to such a socket), and
`SSLContext._wrap_socket` (the C method every `ssl.SSLSocket` is built on, CPython 3.7-3.13) gives the OpenSSL
object directly. CPython's own `ssl.SSLSocket` cannot be used once
gevent has patched `ssl`: its constructor does `super(SSLSocket, self)` with the module global, which is then
gevent's class. The handshake loops on SSLWantRead/WriteError, waiting in gevent's hub (fd_wait),
so only the calling greenlet waits. On the wire nothing changes: same OpenSSL, same context (the caller's).
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

from gevent import get_hub

from simulator.transports import fd_wait
from simulator.transports.ports import StdlibSocket

__all__ = ["TlsSocket", "handshake"]



class TlsSocket:
    """The socket paho drives (recv, send, pending, fileno, setblocking, close; shutdown), non-blocking only.

    recv raises ssl.SSLWantReadError when nothing is decrypted yet (paho turns it into BlockingIOError) and
    returns b"" on end of stream, ragged or not, as `ssl.SSLSocket` with suppress_ragged_eofs does."""

    __slots__ = ("__weakref__", "_obj", "_sock")  # _ssl keeps a weak reference to its owner

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_hostname: str) -> None:
        self._sock = sock
        self._obj: Any = ctx._wrap_socket(sock, False, server_hostname, owner=self)  # type: ignore[attr-defined]

    def do_handshake(self) -> None:
        self._obj.do_handshake()

    def recv(self, bufsize: int) -> bytes:
        try:
            data: bytes = self._obj.read(bufsize)
        except ssl.SSLEOFError:
            return b""  # peer closed without close_notify (ssl.SSLSocket.read, suppress_ragged_eofs=True)
        return data

    def send(self, data: bytes | bytearray | memoryview) -> int:
        sent: int = self._obj.write(data)
        return sent

    def pending(self) -> int:
        """Decrypted bytes already buffered by OpenSSL: epoll will not report them."""
        count: int = self._obj.pending()
        return count

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        if flag:
            raise ValueError("TlsSocket is non-blocking only")

    def getpeercert(self) -> Any:
        return self._obj.getpeercert()

    def version(self) -> str | None:
        version: str | None = self._obj.version()
        return version

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def shutdown(self, how: int) -> None:
        """TCP shutdown, no TLS close_notify (faults and tests kill connections with it)."""
        self._sock.shutdown(how)

    def close(self) -> None:
        """Close, telling libev first (`closing_fd`), as gevent's own sockets do (_socket3.py
        `_drop_ref_on_close`): libev aborts the process when a live watcher meets an fd closed under it
        ("I/O watcher with invalid fd found in epoll_ctl"). paho's on_socket_close stops the shared loop's
        watchers just before this call; should any still be live, the close waits one loop iteration."""
        sock = self._sock
        if sock.fileno() < 0:
            return
        loop = get_hub().loop
        if not loop.closing_fd(sock.fileno()):
            sock.close()
            return
        check = loop.check()

        def deferred() -> None:
            try:
                sock.close()
            finally:
                check.stop()
                check.close()

        check.start(deferred)


def handshake(tcp: Any, ctx: ssl.SSLContext, server_hostname: str, timeout_s: float | None,
              cert: tuple[str, str] | None) -> TlsSocket:
    """TLS over the connected (gevent) TCP socket `tcp`, which it takes over; returns the TlsSocket.

    `cert` None: `ctx` is the device's own and holds its certificate already (tls_contexts). Else `cert` =
    (certificate file, key file) of this connection, loaded into the shared `ctx` just before the OpenSSL
    object is made: SSL_new copies the context's certificate and key into the connection (ssl_lib.c,
    `ssl_cert_dup`), so a context shared by many devices serves each with its own certificate. Nothing
    between the load and the copy can switch greenlets (no I/O, no gevent call), so another device's load
    cannot slip in. Blocks only the calling greenlet during the handshake. Raises ssl.SSLError (bad
    certificate, wrong CA, hostname), OSError (peer gone, unreadable files) or TimeoutError (no handshake
    within `timeout_s`); the socket is closed on any failure."""
    # ports.open_connection gives the standard library's socket under gevent: taken as it is; a gevent socket
    # gives its descriptor to one.
    raw = tcp if type(tcp) is StdlibSocket else StdlibSocket(tcp.family, tcp.type, tcp.proto, fileno=tcp.detach())
    try:
        raw.setblocking(False)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        tls = TlsSocket(raw, ctx, server_hostname)
    except BaseException:
        raw.close()
        raise
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    watchers: dict[int, Any] = {}  # by fd_wait.READ / WRITE, made at their first wait, closed before returning
    try:
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                events = fd_wait.READ
            except ssl.SSLWantWriteError:
                events = fd_wait.WRITE
            watcher = watchers.get(events)
            if watcher is None:
                watcher = watchers[events] = fd_wait.io_watcher(raw.fileno(), events)
            fd_wait.wait(watcher, _left(deadline), _timeout(timeout_s))
    except BaseException:
        _close(watchers)
        raw.close()
        raise
    finally:
        _close(watchers)


def _close(watchers: dict[int, Any]) -> None:
    """Close the handshake's io watchers (before their descriptor is closed or handed on: libev)."""
    for watcher in watchers.values():
        watcher.close()
    watchers.clear()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _timeout(timeout_s: float | None) -> TimeoutError:
    return TimeoutError(f"TLS handshake not done within {timeout_s} s")
