"""Which TLS contexts a LeanFleet gives its devices: per-device ones (tls_contexts) only with a CA file or
verification off, and none when max_device_contexts is 0. No connection is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.transports.base import Endpoint
from simulator.transports.lean_fleet import LeanFleet


@pytest.mark.parametrize(("ca", "ignore", "limit", "expected"), [
    (True, False, 1024, 1024),
    (False, True, 1024, 1024),
    (False, False, 1024, None),  # the system store: ~860 KB per context, never per device
    (True, False, 0, None),
])
def test_per_device_contexts_when_they_are_cheap(tmp_path: Path, ca: bool, ignore: bool, limit: int,
                                                 expected: int | None) -> None:
    import ssl

    ca_file = None
    if ca:  # a self-signed certificate serves as the CA file
        from tests.unit.transports.test_tls_contexts import _write_pair

        ca_file = _write_pair(tmp_path / "ca", "ca")[0]
    endpoint = Endpoint("realm", "https://127.0.0.1:1/pairing", "jwt", ca_file=ca_file, ignore_ssl_errors=ignore,
                        credentials_dir=str(tmp_path / "creds"))
    fleet = LeanFleet(endpoint, {}, max_device_contexts=limit)
    try:
        contexts = fleet.device_contexts
        assert (contexts.capacity if contexts is not None else None) == expected
        assert isinstance(fleet.tls, ssl.SSLContext)
    finally:
        fleet.stop()
