"""ports.py: source-address round robin, the ephemeral range, and one clear error instead of an errno."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from simulator.errors import UsageError
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
