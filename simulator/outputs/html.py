"""report.html: one self-contained page (inline CSS and SVG, no external resource) per run.

Built only from what a run directory holds (summary.json, timeseries.csv, latency.hlog), so `fleetsim report
RUN` can rebuild it later. Every latency shown carries its path name (docs/design.md principle 6).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from simulator.broker_tls import with_tls
from simulator.metrics import names
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.run_summary import LatencyStats, OtaSummary, RunSummary
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


def _v(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_v(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _col(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float | None]]:
    return [(float(r["second"]), None if r.get(key) is None else float(r[key])) for r in rows]


def _campaign_metrics(summary: RunSummary) -> Mapping[str, Any] | None:
    """summary.json extra.campaign_metrics (responder/campaign runs), as written by metrics.campaign."""
    doc = summary.extra.other.get("campaign_metrics") if summary.extra is not None else None
    return doc if isinstance(doc, dict) else None


def _verdict_html(summary: RunSummary) -> str:
    status = summary.verdict
    css = "ok" if status == "ok" else "warn" if status == "generator_saturated" else "bad"
    out = [f'<p>Verdict: <span class="badge {css}">{escape(status)}</span></p>']
    if summary.verdict_reasons:
        out.append("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in summary.verdict_reasons) + "</ul>")
    if summary.latency_trustworthy is False:
        out.append(
            f'<div class="banner"><b>Latency numbers are not the backend\'s.</b> '
            f"{escape(summary.latency_untrusted_reason or '')}</div>"
        )
    report = summary.thresholds
    if report is not None and report.results:
        out.append(_table(["threshold", "required", "observed", "status", "reason"],
                          [[r.metric, r.threshold, r.observed, r.status, r.reason] for r in report.results]))
    caused = [f for f in summary.faults if f.caused is not None]
    if caused:
        out.append(_table(["injected fault", "at s", "lost (caused)", "errors (caused)"],
                          [[f.kind, f.at, f.caused.lost, f.caused.errors] for f in caused if f.caused]))
    if summary.partial:
        out.append('<div class="banner"><b>Partial run</b>: interrupted before its planned end.</div>')
    return "\n".join(out)


def _stat_row(label: str, item: LatencyStats) -> list[object]:
    return [label, item.p50, item.p90, item.p99, item.p999, item.max, item.count, item.negative]


def _latency_section(
    summary: RunSummary,
    series: Sequence[Mapping[str, Any]],
    curves: Mapping[str, list[tuple[float, float]]],
) -> str:
    lat = summary.latency_ms
    rows = [_stat_row(names.PATH_LABELS.get(path, path), item) for path, item in lat.paths().items()]
    # The whole connect first, then each phase by name.
    rows += [_stat_row(names.PATH_LABELS.get(label, label), item) for label, item in lat.onboarding_rows()]
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


def _ota_section(ota: OtaSummary) -> str:
    stages = [(k, float(v)) for k, v in ota.stages.items()]
    codes = [(f"Failure {k}", float(v)) for k, v in ota.by_code.items()]
    codes += [(f"Error {k}", float(v)) for k, v in ota.error_codes.items()]
    ttf, tta = ota.time_to_final_ms, ota.time_to_ack_ms
    return "\n".join(
        [
            "<h2>OTA funnel</h2>",
            _table(["operations", "success", "failure", "failure %", "stuck", "cut"],
                   [[ota.operations, ota.success, ota.failure, ota.failure_pct, ota.stuck, ota.cut]]),
            _table(
                ["time (ms)", "p50", "p99", "max", "count"],
                [["time_to_ack (first Acknowledged - start)", tta.p50, tta.p99, tta.max, tta.count],
                 ["time_to_final (Success/Failure - start)", ttf.p50, ttf.p99, ttf.max, ttf.count]],
            ),
            svg.bar_chart("Operations reaching each status", stages, unit="operations"),
            svg.bar_chart("Status codes", codes, unit="operations / Error events", color=svg.PALETTE[1]),
        ]
    )


def _accounting_section(summary: RunSummary) -> str:
    ev = summary.events
    rows: list[list[object]] = [
        ["planned", ev.planned], ["offered", ev.offered], ["sent", ev.sent], ["acked", ev.acked],
        ["delivered", ev.delivered], ["lost", ev.lost], ["lost outside injected faults", ev.lost_outside_faults],
        ["duplicated", ev.duplicated], ["reordered", ev.reordered], ["late", ev.late],
        ["unexpected", ev.unexpected], ["publish_errors", ev.publish_errors], ["ack_errors", ev.ack_errors],
    ]
    rows += [[f"lost: {k}", v] for k, v in (summary.lost_reasons or {}).items()]
    lost = list(summary.accounting.lost_events[:20]) if summary.accounting is not None else []
    extra = ""
    if lost:
        extra = (
            "<p>First lost events (device, requestUUID, status, progress, occurrence, reason):</p>"
            + _table(["device", "request", "status", "progress", "occ.", "reason"], lost)
        )
    return (
        "<h2>Accounting (send log joined with arrival log)</h2>" + _table(["events", "count"], rows) + extra
    )


def _generator_section(summary: RunSummary, series: Sequence[Mapping[str, Any]]) -> str:
    gen = summary.generator
    th = gen.thresholds
    rows: list[list[object]] = [
        ["CPU (% of one core, p90 of samples)", gen.cpu_pct, th.cpu_pct],
        ["send_lag p99 (ms)", gen.send_lag_ms_p99, th.send_lag_p99_ms],
        ["loop_lag p99 (ms)", gen.loop_lag_ms_p99, th.loop_lag_p99_ms],
        ["sdk transport over device limit", str(gen.sdk_over_limit), th.sdk_device_limit],
        ["saturated", str(gen.saturated), ""],
    ]
    clock = summary.clock_offset
    clock_html = ""
    behind = "; the observer clock is behind: negative e2e latencies were clamped and counted"
    if clock is not None:
        clock_html = (
            f"<p>Clock offset estimate (observer - generator, + min one-way delay): "
            f"{_v(clock.estimate_ms)} ms over {_v(clock.samples)} events"
            f"{behind if clock.observer_behind else ''}.</p>"
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
    summary: RunSummary,
    series: Sequence[Mapping[str, Any]],
    curves: Mapping[str, list[tuple[float, float]]],
) -> str:
    """The page as a string. `curves`: path -> (percentile, ms) points (see percentile_curve_ms)."""
    rate = summary.rate
    env = summary.environment
    title = f"fleetsim: {summary.scenario}"
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
        f'<p class="meta">started {_v(summary.started_at)} · {_v(summary.duration_s)} s · '
        f"{_v(summary.devices)} devices · transport {_v(summary.transport)} · "
        f"target {_v(summary.target)} · broker {escape(with_tls(summary.broker_label, summary.broker_tls))} · "
        f"seed {_v(summary.seed)}</p>",
        *([f'<p class="warn">WARNING: {escape(summary.broker_warning)}</p>'] if summary.broker_warning else []),
        _verdict_html(summary),
        "<h2>Throughput</h2>",
        _table(
            ["offered eps", "acked eps", "delivered eps"],
            [[rate.offered_eps, rate.acked_eps, rate.delivered_eps]],
        ),
        svg.line_chart(
            "Throughput: offered vs delivered, events per second",
            throughput,
            x_label="seconds since start",
            y_label="events / s",
        ),
        _latency_section(summary, series, curves),
        _ota_section(summary.ota),
        _accounting_section(summary),
        _generator_section(summary, series),
        campaign_section(_campaign_metrics(summary)),
        "<h2>Environment</h2>",
        _table(
            ["key", "value"],
            [
                *[[k, v] for k, v in (("python", env.python), ("implementation", env.implementation),
                                      ("platform", env.platform), ("cpu_count", env.cpu_count),
                                      ("cpu_model", env.cpu_model), ("hostname_hash", env.hostname_hash))],
                ["versions", ", ".join(f"{a} {b}" for a, b in env.versions.items() if b)],
            ],
        ),
        f'<p class="meta">summary.json schema {_v(summary.schema_version)}</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    run_dir: str | os.PathLike[str],
    summary: RunSummary,
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
