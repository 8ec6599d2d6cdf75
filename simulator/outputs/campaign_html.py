"""report.html: the campaign section of a backend-driven run (summary extra.campaign_metrics, as JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from simulator.outputs import svg

__all__ = ["campaign_section"]

MAX_ROWS = 50


def _cell(value: Any) -> str:
    return "–" if value is None else escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def campaign_section(doc: Mapping[str, Any] | None) -> str:
    """Latency per operation, slots in use vs max_in_progress, downloads, state convergence ("" without)."""
    if not doc:
        return ""
    ack, final = doc.get("request_to_ack") or {}, doc.get("request_to_final") or {}
    parts = [
        f"<h2>Campaign ({escape(str(doc.get('driver')))} driver"
        f"{', ' + escape(str(doc['backend_status'])) if doc.get('backend_status') else ''})</h2>",
        _table(["per operation", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"],
               [[name, s.get("count"), s.get("p50_ms"), s.get("p90_ms"), s.get("p99_ms"), s.get("max_ms")]
                for name, s in (("request → Acknowledged", ack), ("request → final", final))]),
        _table(["operations", "answered", "duration s", "peak in flight", "max in progress", "retries seen",
                "timeouts"],
               [[doc.get("operations"), doc.get("answered"), doc.get("campaign_duration_s"),
                 doc.get("peak_in_flight"), doc.get("max_in_progress"), doc.get("retries_seen"),
                 doc.get("timeouts")]]),
    ]
    slots = list(doc.get("in_flight_per_s") or [])
    if slots:
        series: list[tuple[str, list[tuple[float, float | None]]]] = [
            ("in flight", [(float(i), float(n)) for i, n in enumerate(slots)])]
        if doc.get("max_in_progress"):
            series.append(("max_in_progress", [(float(i), float(doc["max_in_progress"])) for i in range(len(slots))]))
        parts.append(svg.line_chart("Operations in flight (request reached the device -> final sent)", series,
                                    x_label="seconds since the first request", y_label="operations"))
    dl = doc.get("downloads")
    if dl:
        parts.append(_table(["downloads", "complete", "attempts", "failed", "MB", "p50 MB/s", "min MB/s",
                             "aggregate MB/s"],
                            [["fetch", dl.get("completed"), dl.get("attempts"), dl.get("failed_attempts"),
                              round(int(dl.get("bytes") or 0) / 1e6, 1), dl.get("per_download_mbps_p50"),
                              dl.get("per_download_mbps_min"), dl.get("aggregate_mbps")]]))
    c = doc.get("convergence")
    if c is None:
        parts.append("<p>State convergence: no backend view (no campaign driver in this run).</p>")
        return "\n".join(parts)
    parts.append(f"<p>State convergence: {_cell(c.get('converged'))}/{_cell(c.get('checked'))} converged, "
                 f"<b>{_cell(c.get('diverged_count'))} diverged</b>, {_cell(c.get('never_reached'))} never "
                 f"reached a device, {_cell(c.get('unknown_to_backend'))} unknown to the backend.</p>")
    rows = [[d.get("device"), d.get("uuid"), f"{d.get('backend_status')} {d.get('backend_code') or ''}",
             f"{d.get('device_status')} {d.get('device_code') or ''}"] for d in (c.get("diverged") or [])[:MAX_ROWS]]
    if rows:
        parts.append(_table(["device", "operation", "backend recorded", "device last sent"], rows))
    return "\n".join(parts)
