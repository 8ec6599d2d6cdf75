"""The web UI's fleetsim tab shows rounded numbers (issue 15 item 9: an unrounded float such as
1.2345678901234 ms came straight from the HDR histogram)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from simulator.locust_adapter.live import LiveDelivery, live_rows


def test_floats_are_rounded_ints_untouched() -> None:
    worker = {"devices_online": 3, "offered_eps": 7, "acked_eps": 7, "sent": 40, "acked": 39, "errors": 0,
              "devices_failed": 0, "ack_p50_ms": 1.2345678901234, "ack_p99_ms": 9.87654321}
    ctx: Any = SimpleNamespace(is_master=True, worker_snapshots={"w1": worker})
    delivery = LiveDelivery("http://127.0.0.1:1", count=38, rate=6.666666666, e2e_p50_ms=2.0000001,
                            e2e_p99_ms=None)
    rows = {row["name"]: row["value"] for row in live_rows(ctx, delivery)}
    assert rows["publish->ack p50 ms (last second, HDR)"] == 1.23
    assert rows["publish->ack p99 ms (last second, HDR)"] == 9.88
    assert rows["delivered events/s"] == 6.67
    assert rows["end-to-end p50 ms (arrival - device t, last second)"] == 2.0
    assert rows["end-to-end p99 ms (arrival - device t, last second)"] is None
    assert rows["OTAEvents sent"] == 40 and rows["sent but not yet delivered"] == 2
    floats = [v for v in rows.values() if isinstance(v, float)]
    assert floats and all(len(repr(v).split(".")[1]) <= 2 for v in floats)
