"""Local source addresses and ephemeral ports for many outgoing connections from one host.

A TCP connection is identified by (source address, source port, destination address, destination port).
Towards one broker address:port, one source address gives at most the ephemeral range (Linux default
32768-60999: 28,232 ports, /proc/sys/net/ipv4/ip_local_port_range). Spreading connections over several
source addresses (on loopback every 127.x.y.z is local on Linux, no configuration) multiplies that ceiling.
`IP_BIND_ADDRESS_NO_PORT` (Linux >= 4.2) lets the kernel pick the port at connect() time from the full
4-tuple, instead of reserving a port per address at bind() time. When the kernel still runs out it fails
with EADDRNOTAVAIL: that becomes one clear UsageError saying what to do.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from gevent import monkey

from simulator.errors import UsageError
from simulator.transports import fd_wait

__all__ = [
    "PortsExhausted",
    "SourceAddressPool",
    "StdlibSocket",
    "ephemeral_port_range",
    "loopback_addresses",
    "open_connection",
]

_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # linux/in.h
# The standard library's socket class even under gevent's monkey patching (open_connection, native_tls).
StdlibSocket = cast(type[socket.socket], monkey.get_original("socket", "socket"))
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)


class PortsExhausted(UsageError):
    """No local port left for a new connection (EADDRNOTAVAIL)."""


def ephemeral_port_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    """The kernel's ephemeral port range (low, high); the Linux default when it cannot be read."""
    try:
        low, high = (int(x) for x in path.read_text().split()[:2])
    except (OSError, ValueError):
        return (32768, 60999)
    return (low, high)


def loopback_addresses(count: int) -> tuple[str, ...]:
    """`count` loopback source addresses 127.0.0.1, 127.0.0.2, ... (all local on Linux)."""
    if not 1 <= count <= 254:
        raise UsageError(f"loopback source addresses: count must be 1..254, got {count}")
    return tuple(f"127.0.0.{i}" for i in range(1, count + 1))


class SourceAddressPool:
    """Round-robin over source addresses; empty = let the kernel choose (one address' worth of ports)."""

    def __init__(self, addresses: Sequence[str] = ()) -> None:
        self.addresses = tuple(addresses)
        self._cycle = itertools.cycle(self.addresses) if self.addresses else None

    def next(self) -> str:
        """The address for the next connection ("" = any)."""
        return next(self._cycle) if self._cycle is not None else ""

    def capacity(self) -> int:
        """Rough ceiling of simultaneous connections to one destination address:port."""
        low, high = ephemeral_port_range()
        return (high - low + 1) * max(1, len(self.addresses))


def _exhausted(source: str, dest: tuple[str, int], exc: OSError) -> PortsExhausted:
    low, high = ephemeral_port_range()
    src = source or "the default source address"
    return PortsExhausted(
        f"out of local ports connecting to {dest[0]}:{dest[1]} from {src} ({exc.strerror}): each source "
        f"address has {high - low + 1} ephemeral ports ({low}-{high}); add source addresses "
        "(Endpoint.source_addresses, e.g. 127.0.0.2..127.0.0.9 on loopback) or widen "
        "net.ipv4.ip_local_port_range"
    )


def open_connection(dest: tuple[str, int], source: str = "", timeout_s: float | None = 5.0) -> socket.socket:
    """A connected TCP socket (TCP_NODELAY) to `dest` from `source` ("" = any); cooperative under gevent.

    Under gevent's monkey patching the socket is the standard library's own, non-blocking, its connect waited
    for in gevent's hub (_connect_cooperatively, fd_wait): its one user, native_tls.handshake, takes the
    descriptor over into such a socket anyway, and a gevent socket made only to be detached costs its
    construction (two libev watchers), a Timeout and the detach: 86-89 -> 75-76 us of CPU per connect +
    close on loopback, accepting side included (a throwaway script timing 3,000 connects per variant,
    3 alternating rounds, idle machine, 2026-12-07). Without patching: a blocking socket with a timeout.

    Raises PortsExhausted on EADDRNOTAVAIL; other OSErrors (refused, unreachable, TimeoutError) propagate.
    """
    last: OSError | None = None
    cooperative = monkey.is_module_patched("socket")
    for family, kind, proto, addr in _resolve(dest):
        sock = StdlibSocket(family, kind, proto) if cooperative else socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if source:
                if family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
                try:
                    sock.bind((source, 0))
                except OSError as exc:
                    if exc.errno == errno.EADDRNOTAVAIL:
                        raise UsageError(f"source address {source} is not an address of this host") from exc
                    raise
            if cooperative:
                _connect_cooperatively(sock, addr, timeout_s)
            else:
                sock.settimeout(timeout_s)
                sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRNOTAVAIL:
                raise _exhausted(source, dest, exc) from exc
            last = exc
    raise last if last is not None else OSError(f"cannot resolve {dest[0]}")


def _connect_cooperatively(sock: socket.socket, addr: Any, timeout_s: float | None) -> None:
    """connect() on a non-blocking socket, waiting for it in the hub (only this greenlet waits); raises what a
    gevent socket's connect raises: OSError with the connect's errno (ConnectionRefusedError, ...), or
    TimeoutError("timed out") when `timeout_s` passes first."""
    sock.setblocking(False)
    err = sock.connect_ex(addr)
    if err in _IN_PROGRESS:
        watcher = fd_wait.io_watcher(sock.fileno(), fd_wait.WRITE)
        try:
            fd_wait.wait(watcher, timeout_s, TimeoutError("timed out"))
        finally:
            watcher.close()
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err and err != errno.EISCONN:
        raise OSError(err, os.strerror(err))


def _resolve(dest: tuple[str, int]) -> list[tuple[int, int, int, Any]]:
    """(family, type, proto, address) to try for `dest`. A numeric address (what the Pairing API's broker URL
    usually holds) needs no resolver: under gevent every getaddrinfo goes through the resolver's thread pool,
    ~3% of the generator's CPU in a campaign where every operation reboots (bench/campaign_capacity.py)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, dest[0])
        except (OSError, ValueError):
            continue
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, dest)]
    return [(family, kind, proto, addr)
            for family, kind, proto, _, addr in socket.getaddrinfo(dest[0], dest[1], type=socket.SOCK_STREAM)]
