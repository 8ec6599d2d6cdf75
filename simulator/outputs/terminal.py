"""The end-of-run summary table for the terminal: plain aligned text, every latency with its path name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.metrics.names import ONBOARDING_PHASES

__all__ = ["format_summary", "format_table"]

_LATENCY_ROWS = ("ack", "ack_corrected", "e2e", "e2e_corrected", "e2e_device_t", "send_lag", "loop_lag")


def _v(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
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


def _onboarding_rows(lat: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The whole-connect row, then one per phase (older summaries have only the phases)."""
    onboarding: Mapping[str, Any] = lat.get("onboarding") or {}
    rows: list[tuple[str, Mapping[str, Any]]] = [("onboarding", onboarding)]
    rows += [(f"onboarding.{phase}", onboarding[phase]) for phase in ONBOARDING_PHASES
             if isinstance(onboarding.get(phase), Mapping)]
    return rows


def _clock_lines(summary: Mapping[str, Any]) -> list[str]:
    """The clock offset estimate, and every latency clamped at 0 with its reason: issue 6 wants no negative
    latency shown (here: hidden inside a 0) without saying why."""
    out: list[str] = []
    clock = summary.get("clock_offset")
    if isinstance(clock, Mapping) and clock.get("samples"):
        out.append(f"clock: observer - generator offset estimate {_v(clock.get('estimate_ms'))} ms "
                   f"(upper bound: includes the smallest one-way delay) over {_v(clock.get('samples'))} events"
                   + ("; the observer clock is behind" if clock.get("observer_behind") else ""))
    lat: Mapping[str, Any] = summary.get("latency_ms", {})
    items = [(p, i) for p, i in lat.items() if p != "onboarding" and isinstance(i, Mapping)]
    for path, item in items + _onboarding_rows(lat)[1:]:
        if item.get("negative"):
            reasons = ", ".join(f"{k} {v}" for k, v in dict(item.get("negative_reasons") or {}).items())
            out.append(f"clamped: {path}: {_v(item['negative'])} negative values recorded as 0"
                       + (f" ({reasons})" if reasons else ""))
    return out


def _broker_label(summary: Mapping[str, Any]) -> str:
    """The broker that carried the run (extra.broker_label; runs written before it: extra.broker)."""
    extra: Mapping[str, Any] = summary.get("extra") or {}
    return str(extra.get("broker_label") or extra.get("broker") or "not recorded")


def format_summary(summary: Mapping[str, Any]) -> str:
    ev: Mapping[str, Any] = summary.get("events", {})
    rate: Mapping[str, Any] = summary.get("rate", {})
    lat: Mapping[str, Any] = summary.get("latency_ms", {})
    ota: Mapping[str, Any] = summary.get("ota", {})
    gen: Mapping[str, Any] = summary.get("generator", {})
    out = [
        f"fleetsim {summary.get('scenario')}: {_v(summary.get('duration_s'))} s, "
        f"{_v(summary.get('devices'))} devices, transport {summary.get('transport')}, "
        f"target {summary.get('target')}"
        + ("  [PARTIAL]" if summary.get("partial") else ""),
        f"broker: {_broker_label(summary)}",
        "",
        format_table(
            ["events", "planned", "sent", "acked", "delivered", "lost", "dup", "reord", "late", "unexp"],
            [
                [
                    "count",
                    *(
                        ev.get(k)
                        for k in (
                            "planned",
                            "sent",
                            "acked",
                            "delivered",
                            "lost",
                            "duplicated",
                            "reordered",
                            "late",
                            "unexpected",
                        )
                    ),
                ]
            ],
        ),
        "",
        format_table(
            ["rate (events/s)", "offered", "acked", "delivered"],
            [["", rate.get("offered_eps"), rate.get("acked_eps"), rate.get("delivered_eps")]],
        ),
        "",
        format_table(
            ["latency path (ms)", "p50", "p90", "p99", "p99.9", "max", "count"],
            [
                [path, *(dict(lat[path]).get(k) for k in ("p50", "p90", "p99", "p999", "max", "count"))]
                for path in _LATENCY_ROWS
                if path in lat and dict(lat[path]).get("count")
            ]
            + [
                [label, *(item.get(k) for k in ("p50", "p90", "p99", "p999", "max", "count"))]
                for label, item in _onboarding_rows(lat)
                if item.get("count")
            ],
        ),
        "",
        format_table(
            ["OTA operations", "total", "success", "failure", "stuck", "final p50 ms", "final p99 ms"],
            [
                [
                    "",
                    ota.get("operations"),
                    ota.get("success"),
                    ota.get("failure"),
                    ota.get("stuck"),
                    dict(ota.get("time_to_final_ms", {})).get("p50"),
                    dict(ota.get("time_to_final_ms", {})).get("p99"),
                ]
            ],
        ),
        "",
        f"generator: cpu {_v(gen.get('cpu_pct'))}% of a core, "
        f"send_lag p99 {_v(gen.get('send_lag_ms_p99'))} ms, "
        f"loop_lag p99 {_v(gen.get('loop_lag_ms_p99'))} ms, saturated {gen.get('saturated')}",
    ]
    out += _clock_lines(summary)
    lost = summary.get("lost_reasons") or {}
    if any(lost.values()):
        out.append("lost: " + ", ".join(f"{k} {v}" for k, v in lost.items() if v))
    out.append(
        f"verdict: {summary.get('verdict')}"
        + (f" ({'; '.join(summary.get('verdict_reasons', []))})" if summary.get("verdict_reasons") else "")
    )
    if summary.get("latency_trustworthy") is False:
        out.append(f"WARNING: latencies are not the backend's: {summary.get('latency_untrusted_reason')}")
    extra: Mapping[str, Any] = summary.get("extra") or {}
    if extra.get("broker_warning"):
        out.append(f"WARNING: {extra['broker_warning']}")
    fleet: Mapping[str, Any] = extra.get("fleet") or {}
    failed: Mapping[str, Any] = fleet.get("failed_devices") or {}
    if failed:
        shown = "; ".join(f"{dev}: {why}" for dev, why in list(failed.items())[:3])
        more = f" (+{int(fleet.get('failed') or len(failed)) - 3} more)" if int(fleet.get("failed") or 0) > 3 else ""
        out.append(f"devices that never came online: {fleet.get('failed', len(failed))}: {shown}{more} "
                   "(summary.json extra.fleet.failed_devices)")
    return "\n".join(out) + "\n"
