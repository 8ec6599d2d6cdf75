"""ports.py: source-address round robin, the ephemeral range, and one clear error instead of an errno."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from simulator.errors import UsageError
from simulator.transports import ports
from simulator.transports.ports import (
    SourceAddressPool,
    ephemeral_port_range,
    loopback_addresses,
    open_connection,
)


def test_pool_round_robin_and_capacity(tmp_path: Path) -> None:
    pool = SourceAddressPool(loopback_addresses(3))
    assert [pool.next() for _ in range(4)] == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]
    assert SourceAddressPool().next() == ""
    low, high = ephemeral_port_range()
    assert pool.capacity() == 3 * (high - low + 1)
    f = tmp_path / "range"
    f.write_text("1000\t1999\n")
    assert ephemeral_port_range(f) == (1000, 1999)
    assert ephemeral_port_range(tmp_path / "missing") == (32768, 60999)
    with pytest.raises(UsageError):
        loopback_addresses(0)


def test_connect_from_a_loopback_alias() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        sock = open_connection(server.getsockname(), source="127.0.0.2", timeout_s=5)
        try:
            peer, addr = server.accept()
            assert addr[0] == "127.0.0.2"
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            peer.close()
        finally:
            sock.close()


def test_foreign_source_address_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not an address of this host"):
        open_connection(("127.0.0.1", 9), source="192.0.2.77", timeout_s=1)  # TEST-NET-1, never local


@pytest.fixture
def cooperative(monkeypatch: pytest.MonkeyPatch) -> None:
    """open_connection as under gevent's monkey patching (the generator): the non-blocking connect path."""
    monkeypatch.setattr(ports.monkey, "is_module_patched", lambda name: name == "socket")


def test_cooperative_connect_gives_a_connected_standard_socket(cooperative: None) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        sock = open_connection(server.getsockname(), source="127.0.0.2", timeout_s=5)
        try:
            peer, addr = server.accept()
            assert type(sock) is ports.StdlibSocket  # the standard library's, which native_tls takes as it is
            assert addr[0] == "127.0.0.2" and sock.getpeername() == server.getsockname()
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert sock.gettimeout() == 0.0  # non-blocking: paho and native_tls drive it so
            sock.sendall(b"ping")
            assert peer.recv(4) == b"ping"
            peer.close()
        finally:
            sock.close()


def test_cooperative_connect_refused_and_foreign_source(cooperative: None) -> None:
    with socket.socket() as server:  # bound, not listening: the port refuses
        server.bind(("127.0.0.1", 0))
        with pytest.raises(ConnectionRefusedError):  # lean.connect tells a refusal from other errors
            open_connection(server.getsockname(), timeout_s=5)
    with pytest.raises(UsageError, match="not an address of this host"):
        open_connection(("127.0.0.1", 9), source="192.0.2.77", timeout_s=1)


def test_cooperative_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connect still in progress when timeout_s passes: TimeoutError("timed out"), as a gevent socket raises,
    and the socket is closed."""
    waits: list[float | None] = []

    def never_writable(watcher: object, timeout_s: float | None, exc: BaseException) -> None:
        waits.append(timeout_s)
        raise exc

    class Pending(ports.StdlibSocket):
        def connect_ex(self, addr: object) -> int:
            return errno.EINPROGRESS

    closed: list[Pending] = []

    class Tracked(Pending):
        def close(self) -> None:
            closed.append(self)
            super().close()

    monkeypatch.setattr(ports.fd_wait, "wait", never_writable)
    monkeypatch.setattr(ports, "StdlibSocket", Tracked)
    monkeypatch.setattr(ports.monkey, "is_module_patched", lambda name: True)
    with pytest.raises(TimeoutError, match="timed out"):
        open_connection(("127.0.0.1", 9), timeout_s=0.25)
    assert waits == [0.25] and len(closed) == 1
