"""Terminal lines for the campaign metrics of a backend-driven run (simulator.metrics.campaign)."""

from __future__ import annotations

from simulator.metrics.campaign import CampaignReport, LatencySummary

__all__ = ["campaign_lines"]

MAX_DIVERGED_LINES = 10


def _lat(s: LatencySummary) -> str:
    if not s.count:
        return "-"
    return f"p50 {s.p50_ms:.1f} ms  p99 {s.p99_ms:.1f} ms  max {s.max_ms:.1f} ms  (n={s.count})"


def campaign_lines(r: CampaignReport) -> list[str]:
    limit = f" (max_in_progress {r.max_in_progress}{', EXCEEDED' if r.over_limit else ''})" \
        if r.max_in_progress is not None else ""
    head = (f"campaign ({r.driver} driver{', ' + r.backend_status if r.backend_status else ''})"
            if r.driver != "none" else "OTARequests answered (no campaign driver)")
    lines = [
        f"{head}: {r.operations} operations, {r.answered} answered with a final status",
        f"  request->Acknowledged  {_lat(r.request_to_ack)}",
        f"  request->final         {_lat(r.request_to_final)}",
        f"  duration {'-' if r.campaign_duration_s is None else f'{r.campaign_duration_s:.1f} s'}"
        f" | peak in flight {r.peak_in_flight}{limit}"
        f" | retries seen {r.retries_seen} ({r.operations_retried} operations)"
        f" | timeouts {'-' if r.timeouts is None else r.timeouts}",
    ]
    dl = r.downloads
    if dl is not None:
        lines.append(f"  downloads: {dl.completed}/{dl.operations} complete, {dl.bytes / 1e6:.1f} MB, "
                     f"{dl.failed_attempts} failed attempts {dl.errors or ''}| per download p50 "
                     f"{dl.per_download_mbps_p50 if dl.per_download_mbps_p50 is not None else '-'} MB/s, "
                     f"aggregate {dl.aggregate_mbps if dl.aggregate_mbps is not None else '-'} MB/s")
    c = r.convergence
    if c is None:
        lines.append("  state convergence: no backend view (nobody drove the campaign from fleetsim)")
        return lines
    lines.append(f"  state convergence: {c.converged}/{c.checked} converged, {c.diverged_count} diverged, "
                 f"{c.never_reached} never reached a device, {c.unknown_to_backend} unknown to the backend")
    for d in c.diverged[:MAX_DIVERGED_LINES]:
        lines.append(f"    DIVERGED {d.device} {d.uuid}: backend {d.backend_status or '-'}"
                     f"{'/' + d.backend_code if d.backend_code else ''}, device sent {d.device_status or '-'}"
                     f"{'/' + d.device_code if d.device_code else ''}")
    if c.diverged_count > MAX_DIVERGED_LINES:
        lines.append(f"    ... {c.diverged_count - MAX_DIVERGED_LINES} more in summary.json")
    return lines
