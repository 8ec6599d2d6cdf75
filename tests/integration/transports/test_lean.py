"""Lean transport against the embedded backend (mosquitto, mutual TLS, real Pairing API, collector).

The fleet runs in a child process that monkey-patches gevent first, as Locust does (lean_child.py); the
backend runs here with real threads. Checks: 50 devices onboard and connect over mTLS past fd 1024; the
collector sees each one's handshake (introspection, emptyCache, producer/properties) and no protocol
violation; every QoS 2 OTAEvent is acked; OTARequests reach on_data; devices whose socket dies reconnect by
themselves, and QoS 2 publishes in flight at that moment are retransmitted and acked; an explicit
disconnect/connect works; an explicit disconnect with publishes in flight reports each one "disconnected"
once; a second run reuses the cached credentials (no registration).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest

from simulator.ids import device_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHILD = Path(__file__).with_name("lean_child.py")
REQ = "io.edgehog.devicemanager.OTARequest"
BASE_IMAGE = "io.edgehog.devicemanager.BaseImage"


@pytest.fixture
def backend(tmp_path: Path, mosquitto_binary: str) -> Iterator[Any]:
    from simulator.backend.server import EmbeddedBackend

    be = EmbeddedBackend(tmp_path / "state", realm="test", broker="mosquitto")
    be.start()
    yield be
    be.stop()


def _all_seen(col: Any, ids: list[str]) -> bool:
    return all(col.properties(d).get(BASE_IMAGE) for d in ids)


def _run_child(
    be: Any, ids: list[str], creds: Path, push: list[str], sources: tuple[str, ...] = ()
) -> dict[str, Any]:
    cfg = {
        "devices": len(ids),
        "ids": ids,
        "credentials_dir": str(creds),
        "burn_fds": 1100,
        "expect_data": len(push),
        "sources": list(sources),
    }
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), be.info.to_json(), json.dumps(cfg)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    result: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("CONNECTED"):
                # Let the collector drain first: mosquitto sends a QoS 0 message (the SystemStatus published
                # from on_data) ahead of QoS 2 messages still queued for a lagging subscriber, which the
                # collector would report as a handshake-order violation that no device committed.
                assert be.collector.wait_for(lambda: _all_seen(be.collector, ids), timeout=20)
                for i, d in enumerate(push):
                    value = {"operation": "Update", "url": "https://ota.example/x.bin", "uuid": f"uuid-{i}"}
                    be.collector.publish(f"test/{d}/{REQ}/request", bson.dumps({"v": value}), 0)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return result


def test_lean_fleet_end_to_end(backend: Any, tmp_path: Path) -> None:
    n = 50
    ids = [device_id(7, i) for i in range(n)]
    push = ids[:3]
    creds = tmp_path / "creds"
    out = _run_child(backend, ids, creds, push, sources=("127.0.0.1", "127.0.0.2"))

    assert out["connected"] == n and out["registered"] == n and out["session_present"] == 0
    assert out["max_fd"] > 1024  # no select() anywhere on the path
    assert (out["acked1"], out["errors1"]) == (n, [])
    assert out["reconnected"] == 5
    assert (out["acked2"], out["errors2"]) == (n, [])
    assert (out["inflight_acked"], out["inflight_errors"], out["inflight_reconnected"]) == (5, [], 5)
    assert (out["acked3"], out["errors3"]) == (n, [])
    assert (out["burst_acked"], out["burst_errors"]) == (n * 30, [])  # lean_child.BURST each, past 20 in flight
    assert (out["abandon_acked"], out["abandon_errors"]) == (0, ["disconnected"] * 5)
    assert sorted(r[0] for r in out["received"]) == sorted(push)
    assert all(r[1:3] == [REQ, "/request"] and r[3]["operation"] == "Update" for r in out["received"])
    assert out["qos0_acks"] == [None] * len(push)  # QoS 0 published from inside on_data: written, acked
    assert out["stats"]["pending_acks"] == 0
    # Every device holds its certificate in a TLS context of its own (tls_contexts), reconnects included.
    assert out["device_contexts"] == n

    col = backend.collector
    # 3 rounds of n + 5 retransmitted in-flight publishes (at least once: duplicates are the SDK's behaviour)
    assert col.wait_for(lambda: col.arrival_count() >= 3 * n + 5, timeout=10)
    assert col.violations() == {}, col.violation_examples()
    assert col.devices_seen() >= set(ids)
    hs = col.handshake(ids[0])
    assert hs is not None and hs["empty_cache"] and hs["producer_properties"]
    assert hs["introspection"]["io.edgehog.devicemanager.OTAEvent"] == (0, 1)
    assert col.properties(ids[-1])["io.edgehog.devicemanager.BaseImage"]["/version"] == "1.0.0"

    # Second run, same credentials cache: no registration, no CSR; the SDK's verify + pairing info only.
    again = _run_child(backend, ids[:5], creds, [])
    assert again["connected"] == 5 and again["registered"] == 0
    assert (again["acked1"], again["errors1"]) == (5, [])
