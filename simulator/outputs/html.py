"""report.html: one self-contained page (inline CSS and SVG, no external resource) per run.

Built only from what a run directory holds (summary.json, timeseries.csv, latency.hlog), so `fleetsim report
RUN` can rebuild it later. Every latency shown carries its path name (DESIGN.md principle 6).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from simulator.metrics import names
from simulator.metrics.histograms import HistogramSet
from simulator.outputs import svg
from simulator.outputs.campaign_html import campaign_section
from simulator.outputs.csv_logs import TIMESERIES_FILE, read_timeseries
from simulator.outputs.hdrlog import HLOG_FILE, read_hlog
from simulator.outputs.summary import read_summary

__all__ = ["REPORT_FILE", "rebuild_report", "render_report", "write_report"]

REPORT_FILE = "report.html"
_CURVE_PATHS = (
    names.PATH_ACK,
    names.PATH_ACK_CORRECTED,
    names.PATH_E2E,
    names.PATH_E2E_CORRECTED,
    names.PATH_E2E_DEVICE_T,
    names.PATH_SEND_LAG,
)
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:920px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}.meta{color:#555}
.badge{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:600}
.ok{background:#2ca02c}.bad{background:#d62728}.warn{background:#ff7f0e}
.banner{padding:8px 12px;border-left:4px solid #d62728;background:#fdecea;margin:10px 0}
svg.chart{display:block;margin:8px 0;max-width:100%;height:auto}
svg .t{font-size:14px;font-weight:600}svg .a{font-size:12px;fill:#444}svg .k{font-size:11px;fill:#333}
svg .l{font-size:11px}svg .g{stroke:#e5e5e5}svg .f{fill:none;stroke:#999}
"""


def _v(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_v(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _col(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float | None]]:
    return [(float(r["second"]), None if r.get(key) is None else float(r[key])) for r in rows]


def _verdict_html(summary: Mapping[str, Any]) -> str:
    status = str(summary.get("verdict", "unknown"))
    css = "ok" if status == "ok" else "warn" if status == "generator_saturated" else "bad"
    out = [f'<p>Verdict: <span class="badge {css}">{escape(status)}</span></p>']
    reasons = summary.get("verdict_reasons") or []
    if reasons:
        out.append("<ul>" + "".join(f"<li>{escape(str(r))}</li>" for r in reasons) + "</ul>")
    if summary.get("latency_trustworthy") is False:
        out.append(
            f'<div class="banner"><b>Latency numbers are not the backend\'s.</b> '
            f"{escape(str(summary.get('latency_untrusted_reason') or ''))}</div>"
        )
    if summary.get("partial"):
        out.append('<div class="banner"><b>Partial run</b>: interrupted before its planned end.</div>')
    return "\n".join(out)


def _latency_section(
    summary: Mapping[str, Any],
    series: Sequence[Mapping[str, Any]],
    curves: Mapping[str, list[tuple[float, float]]],
) -> str:
    lat: Mapping[str, Any] = summary.get("latency_ms", {})
    rows = []
    for path, item in lat.items():
        if path == "onboarding" or not isinstance(item, Mapping):
            continue
        rows.append(
            [
                names.PATH_LABELS.get(path, path),
                *(item.get(k) for k in ("p50", "p90", "p99", "p999", "max", "count", "negative")),
            ]
        )
    onboarding: Mapping[str, Any] = lat.get("onboarding") or {}
    # The whole connect first (absent from older summaries), then each phase by name.
    parts = [(names.PATH_LABELS[names.PATH_ONBOARDING], onboarding)] if "count" in onboarding else []
    parts += [(f"onboarding.{phase}", onboarding[phase]) for phase in names.ONBOARDING_PHASES
              if isinstance(onboarding.get(phase), Mapping)]
    for label, item in parts:
        rows.append([label, *(item.get(k) for k in ("p50", "p90", "p99", "p999", "max", "count", "negative"))])
    over_time = [
        (f"{p} {q}", _col(series, f"{p}_{q}_ms"))
        for p in (names.PATH_ACK, names.PATH_E2E)
        for q in ("p50", "p99")
    ]
    over_time = [s for s in over_time if any(y is not None for _, y in s[1])]
    dist = [(path, curves[path]) for path in _CURVE_PATHS if curves.get(path)]
    return "\n".join(
        [
            "<h2>Latency (ms), by path</h2>",
            _table(["path", "p50", "p90", "p99", "p99.9", "max", "count", "clamped<0"], rows),
            svg.line_chart(
                "Latency percentiles over time, per second (ack and e2e paths)",
                over_time,
                x_label="seconds since start",
                y_label="ms",
            ),
            svg.percentile_chart("Latency distribution by path (whole run)", dist),
        ]
    )


def _ota_section(ota: Mapping[str, Any]) -> str:
    stages = [(str(k), float(v)) for k, v in dict(ota.get("stages", {})).items()]
    codes = [(f"Failure {k}", float(v)) for k, v in dict(ota.get("by_code", {})).items()]
    codes += [(f"Error {k}", float(v)) for k, v in dict(ota.get("error_codes", {})).items()]
    ttf = dict(ota.get("time_to_final_ms", {}))
    tta = dict(ota.get("time_to_ack_ms", {}))
    return "\n".join(
        [
            "<h2>OTA funnel</h2>",
            _table(
                ["operations", "success", "failure", "failure %", "stuck"],
                [
                    [
                        ota.get("operations"),
                        ota.get("success"),
                        ota.get("failure"),
                        ota.get("failure_pct"),
                        ota.get("stuck"),
                    ]
                ],
            ),
            _table(
                ["time (ms)", "p50", "p99", "max", "count"],
                [
                    [
                        "time_to_ack (first Acknowledged - start)",
                        tta.get("p50"),
                        tta.get("p99"),
                        tta.get("max"),
                        tta.get("count"),
                    ],
                    [
                        "time_to_final (Success/Failure - start)",
                        ttf.get("p50"),
                        ttf.get("p99"),
                        ttf.get("max"),
                        ttf.get("count"),
                    ],
                ],
            ),
            svg.bar_chart("Operations reaching each status", stages, unit="operations"),
            svg.bar_chart("Status codes", codes, unit="operations / Error events", color=svg.PALETTE[1]),
        ]
    )


def _accounting_section(summary: Mapping[str, Any]) -> str:
    ev: Mapping[str, Any] = summary.get("events", {})
    rows: list[list[Any]] = [
        [k, ev.get(k)]
        for k in (
            "planned",
            "offered",
            "sent",
            "acked",
            "delivered",
            "lost",
            "duplicated",
            "reordered",
            "late",
            "unexpected",
            "publish_errors",
            "ack_errors",
        )
    ]
    reasons = summary.get("lost_reasons") or {}
    rows += [[f"lost: {k}", v] for k, v in dict(reasons).items()]
    acc = summary.get("accounting") or {}
    lost = list(acc.get("lost_events", []))[:20]
    extra = ""
    if lost:
        extra = (
            "<p>First lost events (device, requestUUID, status, progress, occurrence, reason):</p>"
            + _table(["device", "request", "status", "progress", "occ.", "reason"], lost)
        )
    return (
        "<h2>Accounting (send log joined with arrival log)</h2>" + _table(["events", "count"], rows) + extra
    )


def _generator_section(summary: Mapping[str, Any], series: Sequence[Mapping[str, Any]]) -> str:
    gen: Mapping[str, Any] = summary.get("generator", {})
    th = dict(gen.get("thresholds", {}))
    rows: list[list[Any]] = [
        ["CPU (% of one core, p90 of samples)", gen.get("cpu_pct"), th.get("cpu_pct")],
        ["send_lag p99 (ms)", gen.get("send_lag_ms_p99"), th.get("send_lag_p99_ms")],
        ["loop_lag p99 (ms)", gen.get("loop_lag_ms_p99"), th.get("loop_lag_p99_ms")],
        ["sdk transport over device limit", str(gen.get("sdk_over_limit")), th.get("sdk_device_limit")],
        ["saturated", str(gen.get("saturated")), ""],
    ]
    clock = summary.get("clock_offset")
    clock_html = ""
    behind = "; the observer clock is behind: negative e2e latencies were clamped and counted"
    if clock:
        clock_html = (
            f"<p>Clock offset estimate (observer - generator, + min one-way delay): "
            f"{_v(clock.get('estimate_ms'))} ms over {_v(clock.get('samples'))} events"
            f"{behind if clock.get('observer_behind') else ''}.</p>"
        )
    return "\n".join(
        [
            "<h2>Generator health</h2>",
            _table(["measure", "value", "threshold"], rows),
            clock_html,
            svg.line_chart(
                "Devices online and send lag p99",
                [
                    ("devices online", _col(series, "devices_online")),
                    ("send_lag p99 ms", _col(series, f"{names.PATH_SEND_LAG}_p99_ms")),
                ],
                x_label="seconds since start",
                y_label="devices / ms",
                height=220,
            ),
        ]
    )


def render_report(
    summary: Mapping[str, Any],
    series: Sequence[Mapping[str, Any]],
    curves: Mapping[str, list[tuple[float, float]]],
) -> str:
    """The page as a string. `curves`: path -> (percentile, ms) points (see percentile_curve_ms)."""
    rate: Mapping[str, Any] = summary.get("rate", {})
    env: Mapping[str, Any] = summary.get("environment", {})
    title = f"fleetsim: {summary.get('scenario', '?')}"
    throughput = [
        (name, _col(series, key))
        for name, key in (
            ("offered/s", "offered"),
            ("sent/s", "sent"),
            ("acked/s", "acked"),
            ("delivered/s", "delivered"),
            ("lost (by intended s)", "lost"),
        )
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">started {_v(summary.get("started_at"))} · {_v(summary.get("duration_s"))} s · '
        f"{_v(summary.get('devices'))} devices · transport {_v(summary.get('transport'))} · "
        f"target {_v(summary.get('target'))} · seed {_v(summary.get('seed'))}</p>",
        _verdict_html(summary),
        "<h2>Throughput</h2>",
        _table(
            ["offered eps", "acked eps", "delivered eps"],
            [[rate.get("offered_eps"), rate.get("acked_eps"), rate.get("delivered_eps")]],
        ),
        svg.line_chart(
            "Throughput: offered vs delivered, events per second",
            throughput,
            x_label="seconds since start",
            y_label="events / s",
        ),
        _latency_section(summary, series, curves),
        _ota_section(summary.get("ota", {})),
        _accounting_section(summary),
        _generator_section(summary, series),
        campaign_section((summary.get("extra") or {}).get("campaign_metrics")),
        "<h2>Environment</h2>",
        _table(
            ["key", "value"],
            [
                [k, v if not isinstance(v, dict) else ", ".join(f"{a} {b}" for a, b in v.items() if b)]
                for k, v in env.items()
            ],
        ),
        f'<p class="meta">summary.json schema {_v(summary.get("schema_version"))}</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    run_dir: str | os.PathLike[str],
    summary: Mapping[str, Any],
    series: Sequence[Mapping[str, Any]],
    histograms: HistogramSet,
) -> Path:
    curves = {path: hist.percentile_curve_ms() for path, hist in histograms.paths.items()}
    path = Path(run_dir) / REPORT_FILE
    path.write_text(render_report(summary, series, curves), encoding="utf-8")
    return path


def rebuild_report(run_dir: str | os.PathLike[str]) -> Path:
    """Re-create report.html from summary.json, timeseries.csv and (when present) latency.hlog."""
    summary = read_summary(run_dir)
    series_path = Path(run_dir) / TIMESERIES_FILE
    series = read_timeseries(series_path) if series_path.exists() else []
    hlog_path = Path(run_dir) / HLOG_FILE
    histograms = read_hlog(hlog_path) if hlog_path.exists() else HistogramSet()
    return write_report(run_dir, summary, series, histograms)
