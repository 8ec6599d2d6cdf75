"""The fault proxy's engine: relays TCP byte streams and holds every chunk for exactly D ms, in order.

Design (event-driven, one asyncio loop, no task per chunk): each chunk is timestamped when read
(`data_received`, loop.time() = CLOCK_MONOTONIC) and pushed on one heap keyed by its release time
`read + D` (never before the previous chunk of the same connection and direction, so order is kept when D
changes). One Linux timerfd armed at the head's release time wakes the loop at the deadline (see timerfd.py:
asyncio's own timers round epoll timeouts up to whole ms); the callback writes every due chunk. With D = 0 and
nothing queued a chunk is written at once (no heap, no timer). Faults: `stall` keeps connections and holds
every chunk until it ends; `reset_all` sends an RST on every socket (SO_LINGER 0, then close: socket(7));
`block` closes the listening socket so connects are refused (ECONNREFUSED) and reopens it on the same port.
Runs on one loop thread; the public wrappers are in proxy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import socket
import struct
from typing import Any

from hdrh.histogram import HdrHistogram

from simulator.faults.timerfd import TimerFd, timerfd_available

__all__ = ["DOWN", "UP", "ProxyCore"]

_LOG = logging.getLogger(__name__)
UP, DOWN = 0, 1  # client -> upstream, upstream -> client
_CLOSE, _RESET = 1, 2  # markers queued after a side's data so the peer is closed in order
_EARLY_S = 10e-6  # release chunks due within 10 us now rather than pay another wake-up (~50 us)
_LINGER_RST = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}: close() sends RST


def _rst(transport: asyncio.BaseTransport | None) -> None:
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()  # type: ignore[attr-defined]


class _Conn:
    """One proxied connection: the accepted client socket and the socket to upstream."""

    __slots__ = ("client", "dead", "last", "lost", "pending", "queued", "upstream")

    def __init__(self) -> None:
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes | int] = []  # UP payloads released before upstream connected
        self.queued = [0, 0]  # chunks on the heap per direction
        self.last = [0.0, 0.0]  # last release time per direction (order is kept)
        self.lost = [False, False]  # the side reading UP (client) / DOWN (upstream) is gone
        self.dead = False  # reset: queued chunks are dropped

    def dest(self, direction: int) -> asyncio.Transport | None:
        return self.upstream if direction == UP else self.client

    def source(self, direction: int) -> asyncio.Transport | None:
        return self.client if direction == UP else self.upstream


class _Side(asyncio.Protocol):
    """The protocol of one socket; `direction` is the direction of the bytes it reads."""

    def __init__(self, core: ProxyCore, conn: _Conn, direction: int) -> None:
        self.core, self.conn, self.direction = core, conn, direction

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.direction == UP:
            self.conn.client = transport
            self.core.accepted(self.conn)
        else:
            self.conn.upstream = transport

    def data_received(self, data: bytes) -> None:
        self.core.on_data(self.conn, self.direction, data)

    def eof_received(self) -> bool | None:
        return None  # full close; connection_lost follows and queues the close in order

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.on_lost(self.conn, self.direction, exc)

    def pause_writing(self) -> None:  # our write buffer is full: stop reading the side that feeds it
        src = self.conn.source(1 - self.direction)
        if src is not None and not src.is_closing():
            src.pause_reading()

    def resume_writing(self) -> None:
        src = self.conn.source(1 - self.direction)
        if src is not None and not src.is_closing():
            src.resume_reading()


class ProxyCore:
    """All state of one proxy; every method runs on the loop's thread."""

    def __init__(self, upstream_host: str, upstream_port: int, listen_host: str, listen_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host, self.port = listen_host, listen_port
        self.loop = asyncio.get_running_loop()
        self.delay_s = 0.0
        self.stall_until = 0.0
        self.blocked_until = 0.0
        self._server: asyncio.Server | None = None
        self.listening = asyncio.Event()  # set while the listening socket is open (cleared by block)
        self._reopen: asyncio.TimerHandle | None = None
        self._heap: list[tuple[float, int, _Conn, int, bytes | int, bool]] = []
        self._seq = 0
        self._armed: float | None = None
        self._tfd: TimerFd | None = TimerFd() if timerfd_available() else None
        self._handle: asyncio.TimerHandle | None = None
        if self._tfd is not None:
            self.loop.add_reader(self._tfd.fd, self._on_timer)
        self.conns: set[_Conn] = set()
        self.hold_us = HdrHistogram(1, 60_000_000, 3)  # |release error| per held chunk, microseconds
        self.counts = {"connections_total": 0, "bytes_up": 0, "bytes_down": 0, "chunks_up": 0,
                       "chunks_down": 0, "held_chunks": 0, "stalled_chunks": 0, "resets": 0,
                       "upstream_failures": 0}
        self.max_hold_error_s = 0.0

    # ---- lifecycle ----

    async def start(self) -> int:
        await self._listen()
        return self.port

    async def _listen(self) -> None:
        self._server = await self.loop.create_server(
            lambda: _Side(self, _Conn(), UP), self.listen_host, self.port, reuse_address=True, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        self.listening.set()

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.conns):
            conn.dead = True
            for t in (conn.client, conn.upstream):
                if t is not None:
                    t.abort()
        self.conns.clear()
        self._heap.clear()
        if self._tfd is not None:
            self.loop.remove_reader(self._tfd.fd)
            self._tfd.close()
        await asyncio.sleep(0)  # sleep-ok: one loop turn so aborted transports run connection_lost

    # ---- connections ----

    def accepted(self, conn: _Conn) -> None:
        self.conns.add(conn)
        self.counts["connections_total"] += 1
        if conn.client is not None:
            sock = conn.client.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.loop.create_task(self._connect_upstream(conn))

    async def _connect_upstream(self, conn: _Conn) -> None:
        try:
            await self.loop.create_connection(lambda: _Side(self, conn, DOWN), *self.upstream)
        except OSError as exc:
            _LOG.debug("upstream %s:%d: %s", *self.upstream, exc)
            self.counts["upstream_failures"] += 1
            conn.dead = True
            conn.lost[DOWN] = True  # no upstream side will ever report its loss
            if all(conn.lost):
                self.conns.discard(conn)
            _rst(conn.client)  # the client sees its connection refused as closely as a proxy can
            return
        if conn.dead:  # reset or stopped while connecting
            _rst(conn.upstream)
            return
        pending, conn.pending = conn.pending, []
        for payload in pending:
            self._write(conn, UP, payload)

    def on_data(self, conn: _Conn, direction: int, data: bytes) -> None:
        now = self.loop.time()
        self.counts["bytes_up" if direction == UP else "bytes_down"] += len(data)
        self.counts["chunks_up" if direction == UP else "chunks_down"] += 1
        if self.delay_s == 0.0 and not conn.queued[direction] and now >= self.stall_until:
            conn.last[direction] = now
            self._write(conn, direction, data)
            return
        self._push(conn, direction, data, now + self.delay_s)

    def on_lost(self, conn: _Conn, direction: int, exc: Exception | None) -> None:
        conn.lost[direction] = True
        if all(conn.lost):
            self.conns.discard(conn)
        if conn.dead:
            return
        marker = _RESET if exc is not None else _CLOSE
        self._push(conn, direction, marker, self.loop.time() + self.delay_s)

    def _push(self, conn: _Conn, direction: int, payload: bytes | int, release: float) -> None:
        release = max(release, conn.last[direction])
        conn.last[direction] = release
        conn.queued[direction] += 1
        self._seq += 1
        heapq.heappush(self._heap, (release, self._seq, conn, direction, payload, True))
        self._arm()

    def _write(self, conn: _Conn, direction: int, payload: bytes | int) -> None:
        dest = conn.dest(direction)
        if dest is None:
            if direction == UP and not conn.dead:
                conn.pending.append(payload)  # upstream still connecting
            return
        if dest.is_closing():
            return
        if isinstance(payload, bytes):
            dest.write(payload)
        elif payload == _RESET:
            _rst(dest)
        else:
            dest.close()

    # ---- the release timer ----

    def _arm(self) -> None:
        if not self._heap:
            return
        deadline = max(self._heap[0][0], self.stall_until)
        if self._armed is not None and self._armed <= deadline:
            return  # an earlier wake-up is pending; it re-arms for the rest
        self._armed = deadline
        if self._tfd is not None:
            self._tfd.arm_at(deadline)
        else:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        if self._tfd is not None:
            self._tfd.consume()
        self._armed = None
        now = self.loop.time()
        if now < self.stall_until:
            self._arm()
            return
        heap = self._heap
        while heap and heap[0][0] <= now + _EARLY_S:
            release, _, conn, direction, payload, _ = heapq.heappop(heap)
            conn.queued[direction] -= 1
            if conn.dead:
                continue
            if isinstance(payload, bytes):
                if release < self.stall_until:
                    self.counts["stalled_chunks"] += 1  # held by a stall, not by the delay: not an error
                else:
                    self._record_error(self.loop.time() - release)
            self._write(conn, direction, payload)
        self._arm()

    def _record_error(self, error_s: float) -> None:
        self.counts["held_chunks"] += 1
        err = abs(error_s)
        self.hold_us.record_value(max(1, round(err * 1e6)))
        if err > self.max_hold_error_s:
            self.max_hold_error_s = err

    # ---- faults ----

    def set_delay(self, ms: float) -> None:
        if ms < 0:
            raise ValueError(f"delay must be >= 0 ms, got {ms}")
        self.delay_s = ms / 1000.0

    def stall(self, seconds: float) -> None:
        """Hold every chunk (both directions, all connections) for `seconds` from now; 0 ends a stall."""
        self.stall_until = self.loop.time() + max(0.0, seconds)
        self._armed = None  # the deadline moved (maybe earlier): re-arm from scratch
        if self._tfd is not None:
            self._tfd.disarm()
        self._arm()

    def reset_all(self) -> int:
        """RST both sockets of every connection; queued chunks are dropped. Returns the connections reset."""
        conns = list(self.conns)
        self.conns.clear()  # gone now (their connection_lost comes a loop turn later): stats count 0 at once
        for conn in conns:
            conn.dead = True
            _rst(conn.client)
            _rst(conn.upstream)
        self.counts["resets"] += len(conns)
        return len(conns)

    def block(self, seconds: float) -> None:
        """Refuse new connections for `seconds` (listening socket closed, reopened on the same port)."""
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._server is not None:
            self._server.close()
            self._server = None
        self.listening.clear()
        self.blocked_until = self.loop.time() + max(0.0, seconds)
        self._reopen = self.loop.call_later(max(0.0, seconds), self._unblock)

    def _unblock(self) -> None:
        self._reopen = None
        self.loop.create_task(self._relisten())

    async def _relisten(self) -> None:
        try:
            await self._listen()
        except OSError as exc:  # someone took the port meanwhile: report, do not crash the loop
            _LOG.error("fault proxy: cannot listen again on %s:%d: %s", self.listen_host, self.port, exc)
        self.blocked_until = 0.0

    def stats(self) -> dict[str, Any]:
        h = self.hold_us
        held = self.counts["held_chunks"]
        return {
            "listen_port": self.port,
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "delay_ms": self.delay_s * 1000.0,
            "connections": len(self.conns),
            **self.counts,
            "queued_chunks": len(self._heap),
            "stalled": self.loop.time() < self.stall_until,
            "blocked": self._server is None,
            "max_hold_error_ms": self.max_hold_error_s * 1000.0,
            "hold_error_p50_ms": h.get_value_at_percentile(50) / 1000.0 if held else 0.0,
            "hold_error_p99_ms": h.get_value_at_percentile(99) / 1000.0 if held else 0.0,
            "timer": "timerfd" if self._tfd is not None else "asyncio",
        }
