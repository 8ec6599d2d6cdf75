"""summary.json: the one machine-readable result of a run (schema-versioned; `fleetsim compare` reads it).

`summarize` builds the typed RunSummary (simulator.metrics.run_summary) from a run's books; `write_summary`
and `read_summary` are its file. Every latency is stored under its path name in milliseconds; rates are events per
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
from simulator.metrics.fault_attribution import FaultTotals
from simulator.metrics.funnel import Funnel
from simulator.metrics.health import ClockOffset, GeneratorHealth, HealthThresholds, Verdict, verdict
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.run_summary import (
    SCHEMA_VERSION,
    Environment,
    Events,
    GeneratorSummary,
    HealthLimits,
    JoinSummary,
    Latency,
    LatencyStats,
    Onboarding,
    Rates,
    RunNotes,
    RunSummary,
)
from simulator.metrics.series import combined_histograms

__all__ = [
    "SCHEMA_VERSION",
    "SUMMARY_FILE",
    "environment_fingerprint",
    "read_summary",
    "results_dir",
    "summarize",
    "write_summary",
]

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


def environment_fingerprint() -> Environment:
    """Where the numbers were measured: results from different machines are not comparable as-is."""
    versions: dict[str, str | None] = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return Environment(
        python=sys.version.split()[0], implementation=platform.python_implementation(),
        platform=platform.platform(), cpu_count=os.cpu_count(), cpu_model=_cpu_model(),
        # A hash, not the name: summaries get attached to tickets; equal hashes still say "same machine".
        hostname_hash=hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12], versions=versions)


def _stats(item: Mapping[str, Any]) -> LatencyStats:
    return LatencyStats(p50=item.get("p50"), p90=item.get("p90"), p99=item.get("p99"), p999=item.get("p999"),
                        max=item.get("max"), mean=item.get("mean"), count=item.get("count") or 0,
                        negative=item.get("negative"), overflow=item.get("overflow"),
                        negative_reasons=dict(item.get("negative_reasons") or {}))


def _latency(hists: HistogramSet, path: str) -> LatencyStats:
    return _stats(hists.get(path).summary_ms() if path in hists.paths else {"count": 0})


def _rate(count: int | None, duration_s: float) -> float | None:
    if count is None or duration_s <= 0:
        return None
    return round(count / duration_s, 3)


def summarize(
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
    notes: RunNotes | None = None,
    attributed: FaultTotals | None = None,
    join: JoinSummary | None = None,
    invalid_join: str = "",
) -> RunSummary:
    """The RunSummary of a finished (or interrupted: `partial`) run.

    `started_at` is wall seconds since the epoch; `planned` defaults to the accounting's (or the recorder's
    offered) count. Without `accounting` (no observer), delivered/lost/duplicated/reordered are None.
    `attributed`: errors and losses inside injected faults' windows (simulator.metrics.fault_attribution);
    they are reported against the faults, not judged as the backend's. `join`: the run's fence and the join's
    sanity; `invalid_join` (why the join is impossible, simulator.metrics.join_check) makes the verdict
    `invalid_join`.
    """
    hists = combined_histograms(recorder, accounting)
    if health is not None:
        hists.paths[names.PATH_LOOP_LAG] = health.loop_lag
    totals = recorder.totals
    acc = accounting.to_summary() if accounting is not None else None
    caused = attributed or FaultTotals()
    errors = totals["publish_errors"] + totals["ack_errors"]
    events = Events(
        planned=planned if planned is not None else (acc.planned if acc else totals["offered"]),
        offered=totals["offered"], sent=totals["sent"], acked=totals["acked"],
        publish_errors=totals["publish_errors"], ack_errors=totals["ack_errors"],
        delivered=acc.delivered if acc else None, lost=acc.lost if acc else None,
        duplicated=acc.duplicated if acc else None, reordered=acc.reordered if acc else None,
        late=acc.late if acc else None, unexpected=acc.unexpected if acc else None,
        lost_outside_faults=max(0, acc.lost - caused.lost) if acc else None,
        errors_outside_faults=max(0, errors - caused.errors))
    latency = Latency(
        ack=_latency(hists, names.PATH_ACK), ack_corrected=_latency(hists, names.PATH_ACK_CORRECTED),
        e2e=_latency(hists, names.PATH_E2E), e2e_corrected=_latency(hists, names.PATH_E2E_CORRECTED),
        e2e_device_t=_latency(hists, names.PATH_E2E_DEVICE_T), send_lag=_latency(hists, names.PATH_SEND_LAG),
        loop_lag=_latency(hists, names.PATH_LOOP_LAG),
        # The whole-connect percentiles at the top (latency_ms.onboarding.p99), each phase beside them by name.
        onboarding=Onboarding(whole=_latency(hists, names.PATH_ONBOARDING),
                              phases={p: _latency(hists, names.onboarding_path(p)) for p in names.ONBOARDING_PHASES}))
    send_lag_p99 = latency.send_lag.p99
    loop_lag_p99 = latency.loop_lag.p99
    cpu = health.cpu_pct() if health is not None else None
    judged = run_verdict or verdict(
        send_lag_p99_ms=send_lag_p99, cpu_pct=cpu, loop_lag_p99_ms=loop_lag_p99, sdk_over_limit=sdk_over_limit,
        errors=errors, offered=totals["offered"], lost=events.lost or 0, planned=events.planned,
        partial=partial, thresholds=thresholds, fault_errors=caused.errors, fault_lost=caused.lost,
        invalid_join=invalid_join)
    return RunSummary(
        scenario=scenario, seed=seed,
        started_at=datetime.fromtimestamp(started_at, tz=UTC).isoformat().replace("+00:00", "Z"),
        started_at_epoch=started_at, duration_s=duration_s, devices=devices, transport=transport, target=target,
        partial=partial, events=events,
        rate=Rates(offered_eps=_rate(totals["offered"], duration_s), sent_eps=_rate(totals["sent"], duration_s),
                   acked_eps=_rate(totals["acked"], duration_s), delivered_eps=_rate(events.delivered, duration_s)),
        latency_ms=latency, latency_trustworthy=judged.latency_trustworthy,
        latency_untrusted_reason=judged.untrusted_reason,
        lost_reasons=dict(acc.lost_reasons) if acc else None, accounting=acc,
        ota=(funnel if funnel is not None else Funnel()).to_summary(),
        generator=GeneratorSummary(
            cpu_pct=cpu, cpu_samples=health.cpu_sample_count if health is not None else 0,
            send_lag_ms_p99=send_lag_p99, loop_lag_ms_p99=loop_lag_p99, saturated=judged.saturated,
            sdk_over_limit=sdk_over_limit, connects=recorder.connects, session_present=recorder.session_present,
            error_reasons=dict(recorder.error_reasons),
            thresholds=HealthLimits(send_lag_p99_ms=thresholds.send_lag_p99_ms, cpu_pct=thresholds.cpu_pct,
                                    loop_lag_p99_ms=thresholds.loop_lag_p99_ms,
                                    sdk_device_limit=thresholds.sdk_device_limit, error_pct=thresholds.error_pct)),
        clock_offset=clock_offset.to_summary() if clock_offset is not None else None,
        verdict=judged.status, verdict_reasons=tuple(judged.reasons), environment=environment_fingerprint(),
        extra=notes, join=join)


def write_summary(run_dir: str | os.PathLike[str], summary: RunSummary) -> Path:
    path = Path(run_dir) / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary.to_json(), indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a summary
    return path


def read_summary(run_dir: str | os.PathLike[str]) -> RunSummary:
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
    return RunSummary.from_json(data, str(path))
