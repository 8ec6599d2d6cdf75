"""The end-of-run summary table for the terminal: plain aligned text, every latency with its path name."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.broker_tls import with_tls
from simulator.metrics.run_summary import LatencyStats, RunSummary
from simulator.outputs.exit_status import ExitStatus, status_lines

__all__ = ["format_summary", "format_table"]

def _v(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned first column, right-aligned numbers, two spaces between columns."""
    cells = [list(header)] + [[_v(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clock_lines(summary: RunSummary) -> list[str]:
    """The clock offset estimate, and every latency clamped at 0 with its reason: issue 6 wants no negative
    latency shown (here: hidden inside a 0) without saying why."""
    out: list[str] = []
    clock = summary.clock_offset
    if clock is not None and clock.samples:
        out.append(f"clock: observer - generator offset estimate {_v(clock.estimate_ms)} ms "
                   f"(upper bound: includes the smallest one-way delay) over {_v(clock.samples)} events"
                   + ("; the observer clock is behind" if clock.observer_behind else ""))
    lat = summary.latency_ms
    for path, item in [*lat.paths().items(), *lat.onboarding_rows()[1:]]:
        if item.negative:
            reasons = ", ".join(f"{k} {v}" for k, v in item.negative_reasons.items())
            out.append(f"clamped: {path}: {_v(item.negative)} negative values recorded as 0"
                       + (f" ({reasons})" if reasons else ""))
    return out


def _fault_lines(summary: RunSummary) -> list[str]:
    out = []
    for f in summary.faults:
        if f.caused is not None and (f.caused.lost or f.caused.errors):
            out.append(f"fault {f.kind} at {_v(f.at)} s caused {_v(f.caused.lost)} lost, "
                       f"{_v(f.caused.errors)} publish/ack errors (counted against the fault, not the backend)")
    return out


def _failed_device_lines(summary: RunSummary) -> list[str]:
    """The devices that never came online, the first three by name (all of them: summary.json)."""
    notes = summary.extra
    if notes is None or not notes.failed_devices:
        return []
    total = int(notes.fleet.get("failed") or len(notes.failed_devices))
    shown = "; ".join(f"{dev}: {why}" for dev, why in list(notes.failed_devices.items())[:3])
    more = f" (+{total - 3} more)" if total > 3 else ""
    return [f"devices that never came online: {total}: {shown}{more} (summary.json extra.failed_devices)"]


def _latency_row(label: str, item: LatencyStats) -> list[object]:
    return [label, item.p50, item.p90, item.p99, item.p999, item.max, item.count]


def format_summary(summary: RunSummary, status: ExitStatus | None = None, run_dir: object = None) -> str:
    """The end-of-run table. With `status`, the last lines are the thresholds, the verdict and the exit code
    (simulator.outputs.exit_status); with `run_dir`, the results directory comes just before them."""
    ev, rate, lat, ota, gen = summary.events, summary.rate, summary.latency_ms, summary.ota, summary.generator
    out = [
        f"fleetsim {summary.scenario}: {_v(summary.duration_s)} s, {_v(summary.devices)} devices, "
        f"transport {summary.transport}, target {summary.target}" + ("  [PARTIAL]" if summary.partial else ""),
        f"broker: {with_tls(summary.broker_label, summary.broker_tls)}",
        "",
        format_table(
            ["events", "planned", "sent", "acked", "delivered", "lost", "dup", "reord", "late", "unexp"],
            [["count", ev.planned, ev.sent, ev.acked, ev.delivered, ev.lost, ev.duplicated, ev.reordered,
              ev.late, ev.unexpected]]),
        "",
        format_table(["rate (events/s)", "offered", "acked", "delivered"],
                     [["", rate.offered_eps, rate.acked_eps, rate.delivered_eps]]),
        "",
        format_table(
            ["latency path (ms)", "p50", "p90", "p99", "p99.9", "max", "count"],
            [_latency_row(path, item) for path, item in lat.paths().items() if item.count]
            + [_latency_row(label, item) for label, item in lat.onboarding_rows() if item.count]),
        "",
        format_table(
            ["OTA operations", "total", "success", "failure", "stuck", "cut", "final p50 ms", "final p99 ms"],
            [["", ota.operations, ota.success, ota.failure, ota.stuck, ota.cut, ota.time_to_final_ms.p50,
              ota.time_to_final_ms.p99]]),
        "",
        f"generator: cpu {_v(gen.cpu_pct)}% of a core, send_lag p99 {_v(gen.send_lag_ms_p99)} ms, "
        f"loop_lag p99 {_v(gen.loop_lag_ms_p99)} ms, saturated {gen.saturated}",
    ]
    out += _clock_lines(summary)
    lost = summary.lost_reasons or {}
    if any(lost.values()):
        out.append("lost: " + ", ".join(f"{k} {v}" for k, v in lost.items() if v))
    out += _fault_lines(summary)
    if summary.latency_trustworthy is False:
        out.append(f"WARNING: latencies are not the backend's: {summary.latency_untrusted_reason}")
    if summary.broker_warning:
        out.append(f"WARNING: {summary.broker_warning}")
    out += _failed_device_lines(summary)
    if run_dir is not None:
        out.append(f"results: {run_dir}")
    if status is not None:
        out += status_lines(summary, status)
    else:
        out.append(f"verdict: {summary.verdict}"
                   + (f" ({'; '.join(summary.verdict_reasons)})" if summary.verdict_reasons else ""))
    return "\n".join(out) + "\n"
