"""Live numbers while the test runs: the progress line of `fleetsim run` and the web UI's fleetsim tab.

"delivered" comes from the embedded collector's counter (polled once a second by `LiveDelivery`), so a
falling delivered rate shows up while the run is still going, not only at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
import numpy as np

if TYPE_CHECKING:  # importing the context imports locust, which monkey-patches gevent (tests import this module)
    from simulator.locust_adapter.context import FleetContext
from simulator.records import ArrivalRecord

__all__ = ["LiveDelivery", "add_request_counts", "live_rows", "live_snapshot", "progress_line"]


@dataclass
class LiveDelivery:
    """Polls the collector's delivered count (embedded target only) and keeps a per-second rate."""

    control_url: str
    count: int = 0
    rate: float = 0.0
    error: str = ""
    e2e_p50_ms: float | None = None  # arrival - device `t`, over the arrivals of the last poll (one second)
    e2e_p99_ms: float | None = None
    # Called with each poll's new arrival rows (live telemetry: delivered count, e2e histogram).
    listeners: list[Callable[[list[ArrivalRecord]], None]] = field(default_factory=list)
    _greenlet: Any = field(default=None, repr=False)

    def start(self) -> None:
        if self.control_url and self._greenlet is None:
            self._greenlet = gevent.spawn(self._poll)

    def _poll(self) -> None:
        from simulator.observers.embedded import CollectorClient

        client = CollectorClient(self.control_url)
        base: int | None = None  # the collector's row count when we began: earlier rows are other runs'
        while True:
            try:
                if base is None:
                    base = int(client.stats()["arrivals"])
                fresh = client.raw_arrivals(since=base + self.count)  # incremental: only the rows not seen yet
                self.rate, self.count, self.error = float(len(fresh)), self.count + len(fresh), ""
                for listener in self.listeners:
                    listener(fresh)
                lat = [(a.arrival - a.t_ms / 1000.0) * 1000.0 for a in fresh if a.t_ms is not None]
                if lat:
                    p50, p99 = np.percentile(lat, [50, 99])
                    self.e2e_p50_ms, self.e2e_p99_ms = float(p50), float(p99)
                else:
                    self.e2e_p50_ms = self.e2e_p99_ms = None
            except Exception as exc:  # a slow collector must not stop the run; the line says so
                self.error = str(exc)
            gevent.sleep(1.0)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None


def live_snapshot(ctx: FleetContext) -> dict[str, Any]:
    """Local recorder snapshot, or the sum of the workers' latest snapshots on a master."""
    if ctx.is_master:
        snaps = list(ctx.worker_snapshots.values())
        out: dict[str, Any] = {"devices_online": 0, "offered_eps": 0, "acked_eps": 0, "sent": 0, "acked": 0,
                               "errors": 0, "ack_p50_ms": None, "ack_p99_ms": None, "devices_failed": 0,
                               "in_flight": 0, "requests": 0}
        for snap in snaps:
            for key in ("devices_online", "offered_eps", "acked_eps", "sent", "acked", "errors", "devices_failed",
                        "in_flight", "requests"):
                out[key] += int(snap.get(key) or 0)
        p50s = [s["ack_p50_ms"] for s in snaps if s.get("ack_p50_ms") is not None]
        p99s = [s["ack_p99_ms"] for s in snaps if s.get("ack_p99_ms") is not None]
        out["ack_p50_ms"] = max(p50s) if p50s else None  # worst worker: never flatter the backend
        out["ack_p99_ms"] = max(p99s) if p99s else None
        return out
    snap = ctx.ensure_recorder().snapshot()
    snap["devices_failed"] = len(ctx.fleet.failed) if ctx.fleet is not None else 0
    add_request_counts(ctx, snap)
    return snap


def add_request_counts(ctx: FleetContext, snap: dict[str, Any]) -> None:
    """Backend-driven devices: operations in flight and OTARequests received so far (`--until-idle`)."""
    fleet = ctx.fleet
    if fleet is not None:
        snap["in_flight"] = fleet.requests_in_flight()
        snap["requests"] = sum(d.counters.requests for d in fleet.devices.values())


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"


def progress_line(snap: dict[str, Any], delivery: LiveDelivery | None, devices: int, elapsed_s: float,
                  end_s: float | None) -> str:
    """One line of live numbers; `end_s`: when the run ends on its clock (None: onboarding, before the start)."""
    when = (f"{elapsed_s:5.0f}s, {max(0.0, end_s - elapsed_s):.0f}s left" if end_s is not None
            else f"onboarding {elapsed_s:4.0f}s")
    delivered = f"{delivery.rate:.0f}/s" if delivery is not None and delivery.control_url else "n/a"
    return (f"[{when}] devices {snap['devices_online']}/{devices} online"
            f"{' (' + str(snap['devices_failed']) + ' failed)' if snap.get('devices_failed') else ''}"
            f" | events/s offered {snap['offered_eps']} acked {snap['acked_eps']} delivered {delivered}"
            f" | ack p50 {_ms(snap['ack_p50_ms'])} p99 {_ms(snap['ack_p99_ms'])}"
            f" | sent {snap['sent']} acked {snap['acked']} errors {snap['errors']}")


def live_rows(ctx: FleetContext, delivery: LiveDelivery | None = None) -> list[dict[str, Any]]:
    snap = live_snapshot(ctx)
    rows = [{"name": name, "value": snap.get(key)} for name, key in (
        ("devices online", "devices_online"), ("devices failed to onboard", "devices_failed"),
        ("OTAEvents sent", "sent"), ("OTAEvents acked (QoS 2 PUBCOMP)", "acked"), ("errors", "errors"),
        ("offered events/s (last second)", "offered_eps"), ("acked events/s (last second)", "acked_eps"),
        ("publish->ack p50 ms (last second, HDR)", "ack_p50_ms"),
        ("publish->ack p99 ms (last second, HDR)", "ack_p99_ms"))]
    if delivery is not None and delivery.control_url:
        rows.append({"name": "delivered to backend (collector)", "value": delivery.count})
        rows.append({"name": "delivered events/s", "value": delivery.rate})
        rows.append({"name": "sent but not yet delivered", "value": int(snap.get("sent") or 0) - delivery.count})
        rows.append({"name": "end-to-end p50 ms (arrival - device t, last second)", "value": delivery.e2e_p50_ms})
        rows.append({"name": "end-to-end p99 ms (arrival - device t, last second)", "value": delivery.e2e_p99_ms})
    return [{"name": row["name"], "value": _shown(row["value"])} for row in rows]


def _shown(value: Any) -> Any:
    """Floats to 2 decimals for the web tab (ms: 10 us steps; HDR values carry ~15 digits of noise)."""
    return round(value, 2) if isinstance(value, float) else value
