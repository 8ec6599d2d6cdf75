"""summary.json: the one machine-readable result of a run (schema-versioned; `fleetsim compare` reads it).

Every latency is stored under its path name (DESIGN.md principle 6) in milliseconds; rates are events per
second of the run's `duration_s`. When the generator was saturated, `latency_trustworthy` is false with the
reason: those numbers are not the backend's (metrics/health.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from simulator.errors import UsageError
from simulator.metrics import names
from simulator.metrics.accounting import Accounting
from simulator.metrics.funnel import Funnel
from simulator.metrics.health import ClockOffset, GeneratorHealth, HealthThresholds, Verdict, verdict
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.series import combined_histograms

__all__ = [
    "SCHEMA_VERSION",
    "SUMMARY_FILE",
    "build_summary",
    "environment_fingerprint",
    "read_summary",
    "results_dir",
    "write_summary",
]

SCHEMA_VERSION = 1
_DEFAULT_THRESHOLDS = HealthThresholds()
SUMMARY_FILE = "summary.json"
_VERSIONED = (
    "edgehog-fleetsim",
    "locust",
    "astarte-device-sdk",
    "paho-mqtt",
    "gevent",
    "hdrhistogram",
    "numpy",
)
_LATENCY_KEYS = ("p50", "p90", "p99", "p999", "max", "mean", "count", "negative", "overflow")


def results_dir(root: str | os.PathLike[str], scenario: str, now: datetime | float) -> Path:
    """Create and return `root/<UTC YYYYmmddTHHMMSSZ>-<scenario>/` (scenario name made filesystem-safe)."""
    when = now if isinstance(now, datetime) else datetime.fromtimestamp(now, tz=UTC)
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", scenario).strip("-.") or "run"
    path = Path(root) / f"{stamp}-{safe}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_fingerprint() -> dict[str, Any]:
    """Where the numbers were measured: results from different machines are not comparable as-is."""
    versions: dict[str, str | None] = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        # A hash, not the name: summaries get attached to tickets; equal hashes still say "same machine".
        "hostname_hash": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12],
        "versions": versions,
    }


def _latency(hists: HistogramSet, path: str) -> dict[str, Any]:
    item = hists.get(path).summary_ms() if path in hists.paths else {"path": path, "count": 0}
    out = {key: item.get(key) for key in _LATENCY_KEYS}
    out["count"] = out["count"] or 0
    if item.get("negative_reasons"):
        out["negative_reasons"] = item["negative_reasons"]
    return out


def _rate(count: int | None, duration_s: float) -> float | None:
    if count is None or duration_s <= 0:
        return None
    return round(count / duration_s, 3)


def build_summary(
    *,
    scenario: str,
    seed: int,
    started_at: float,
    duration_s: float,
    devices: int,
    transport: str,
    target: str,
    recorder: MetricsRecorder,
    accounting: Accounting | None = None,
    funnel: Funnel | None = None,
    health: GeneratorHealth | None = None,
    planned: int | None = None,
    partial: bool = False,
    clock_offset: ClockOffset | None = None,
    sdk_over_limit: bool = False,
    thresholds: HealthThresholds = _DEFAULT_THRESHOLDS,
    run_verdict: Verdict | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble summary.json from the pieces of a finished (or interrupted: `partial`) run.

    `started_at` is wall seconds since the epoch; `planned` defaults to the accounting's (or the recorder's
    offered) count. Without `accounting` (no observer), delivered/lost/duplicated/reordered are null.
    """
    hists = combined_histograms(recorder, accounting)
    if health is not None:
        hists.paths[names.PATH_LOOP_LAG] = health.loop_lag
    totals = recorder.totals
    acc = accounting.to_summary() if accounting is not None else None
    events: dict[str, Any] = {
        "planned": planned if planned is not None else (acc["planned"] if acc else totals["offered"]),
        "offered": totals["offered"],
        "sent": totals["sent"],
        "acked": totals["acked"],
        "publish_errors": totals["publish_errors"],
        "ack_errors": totals["ack_errors"],
    }
    for key in ("delivered", "lost", "duplicated", "reordered", "late", "unexpected"):
        events[key] = acc[key] if acc else None
    latency: dict[str, Any] = {
        path: _latency(hists, path)
        for path in (
            names.PATH_ACK,
            names.PATH_ACK_CORRECTED,
            names.PATH_E2E,
            names.PATH_E2E_CORRECTED,
            names.PATH_E2E_DEVICE_T,
            names.PATH_SEND_LAG,
            names.PATH_LOOP_LAG,
        )
    }
    # The whole-connect percentiles at the top (latency_ms.onboarding.p99), each phase beside them by name.
    latency[names.PATH_ONBOARDING] = {
        **_latency(hists, names.PATH_ONBOARDING),
        **{phase: _latency(hists, names.onboarding_path(phase)) for phase in names.ONBOARDING_PHASES},
    }
    send_lag_p99 = latency[names.PATH_SEND_LAG]["p99"]
    loop_lag_p99 = latency[names.PATH_LOOP_LAG]["p99"]
    cpu = health.cpu_pct() if health is not None else None
    errors = totals["publish_errors"] + totals["ack_errors"]
    judged = run_verdict or verdict(
        send_lag_p99_ms=send_lag_p99,
        cpu_pct=cpu,
        loop_lag_p99_ms=loop_lag_p99,
        sdk_over_limit=sdk_over_limit,
        errors=errors,
        offered=totals["offered"],
        lost=events["lost"] or 0,
        planned=events.get("planned") or 0,
        partial=partial,
        thresholds=thresholds,
    )
    ota = funnel.to_summary() if funnel is not None else Funnel().to_summary()
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario,
        "seed": seed,
        "started_at": datetime.fromtimestamp(started_at, tz=UTC).isoformat().replace("+00:00", "Z"),
        "started_at_epoch": started_at,
        "duration_s": duration_s,
        "devices": devices,
        "transport": transport,
        "target": target,
        "partial": partial,
        "events": events,
        "rate": {
            "offered_eps": _rate(totals["offered"], duration_s),
            "sent_eps": _rate(totals["sent"], duration_s),
            "acked_eps": _rate(totals["acked"], duration_s),
            "delivered_eps": _rate(events["delivered"], duration_s),
        },
        "latency_ms": latency,
        "latency_trustworthy": judged.latency_trustworthy,
        "latency_untrusted_reason": judged.untrusted_reason,
        "lost_reasons": acc["lost_reasons"] if acc else None,
        "accounting": acc,
        "ota": ota,
        "generator": {
            "cpu_pct": cpu,
            "cpu_samples": len(health.cpu_samples) if health is not None else 0,
            "send_lag_ms_p99": send_lag_p99,
            "loop_lag_ms_p99": loop_lag_p99,
            "saturated": judged.saturated,
            "sdk_over_limit": sdk_over_limit,
            "connects": recorder.connects,
            "session_present": recorder.session_present,
            "error_reasons": dict(recorder.error_reasons),
            "thresholds": {
                "send_lag_p99_ms": thresholds.send_lag_p99_ms,
                "cpu_pct": thresholds.cpu_pct,
                "loop_lag_p99_ms": thresholds.loop_lag_p99_ms,
                "sdk_device_limit": thresholds.sdk_device_limit,
                "error_pct": thresholds.error_pct,
            },
        },
        "clock_offset": clock_offset.to_summary() if clock_offset is not None else None,
        "verdict": judged.status,
        "verdict_reasons": list(judged.reasons),
        "environment": environment_fingerprint(),
    }
    if extra:
        summary["extra"] = dict(extra)
    return summary


def write_summary(run_dir: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    path = Path(run_dir) / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a summary
    return path


def read_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load summary.json; a missing or malformed file is one clear UsageError naming it."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file (is {run_dir} a fleetsim run directory?)") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise UsageError(f"{path}: schema_version: missing (not a fleetsim summary)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise UsageError(f"{path}: schema_version: {data['schema_version']!r} is not {SCHEMA_VERSION}")
    return data
