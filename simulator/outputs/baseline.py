"""Baselines: the numbers of a reference run, kept in git (results/baselines/*.json) for `fleetsim compare`.

A baseline holds every metric of simulator.metrics.names.METRICS (null when the run had no value), the
scenario and seed, and where it was measured: the environment fingerprint of summary.json plus the transport,
the broker and the target. Numbers from unlike machines are not comparable as-is; compare says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from simulator.errors import UsageError
from simulator.metrics.json_tree import JsonValue, from_json, to_json
from simulator.metrics.metric_table import METRICS, metric_value
from simulator.metrics.run_summary import RunSummary
from simulator.outputs.summary import SUMMARY_FILE, read_summary

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "ENV_KEYS",
    "Baseline",
    "build_baseline",
    "environment_of",
    "read_baseline",
    "read_run_summary",
    "write_baseline",
]

BASELINE_FORMAT = "fleetsim-baseline"
BASELINE_VERSION = 1
# What makes two measurements comparable (issue 7): the same CPU, Python, transport and broker.
ENV_KEYS = ("cpu_model", "cpu_count", "python", "transport", "broker")


def read_run_summary(run: str | os.PathLike[str]) -> RunSummary:
    """summary.json of a run directory (or the summary file itself)."""
    path = Path(run)
    if path.is_file() and path.name == SUMMARY_FILE:
        path = path.parent
    if not path.is_dir():
        raise UsageError(f"{run}: not a run directory (expected results/<timestamp>-<scenario>/)")
    return read_summary(path)


@dataclass(frozen=True)
class Baseline:
    """A baseline file (JSON keys = field names): a run's metrics and where they were measured."""

    format: str = BASELINE_FORMAT
    version: int = BASELINE_VERSION
    scenario: str | None = None
    seed: int | None = None
    devices: int | None = None
    duration_s: float | None = None
    source: str = ""
    started_at: str | None = None
    verdict: str | None = None
    latency_trustworthy: bool | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    environment: Mapping[str, JsonValue] = field(default_factory=dict)


def environment_of(summary: RunSummary) -> dict[str, JsonValue]:
    """The comparable environment of a run summary: fingerprint + transport, broker, target."""
    env = to_json(summary.environment)
    assert isinstance(env, dict)
    env["transport"] = summary.transport
    env["target"] = summary.target
    env["broker"] = summary.extra.broker if summary.extra is not None else None
    return env


def build_baseline(summary: RunSummary, source: str = "") -> Baseline:
    """The baseline of a run summary."""
    return Baseline(scenario=summary.scenario, seed=summary.seed, devices=summary.devices,
                    duration_s=summary.duration_s, source=source, started_at=summary.started_at,
                    verdict=summary.verdict, latency_trustworthy=summary.latency_trustworthy,
                    metrics={name: metric_value(summary, name) for name in METRICS},
                    environment=environment_of(summary))


def write_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(to_json(baseline), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def read_baseline(path: str | os.PathLike[str]) -> Baseline:
    """A baseline file; one clear UsageError naming the file (and line) when it is not one."""
    source = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{source}: no such baseline file (make one: fleetsim baseline RUN --out {source})"
        ) from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except OSError as exc:
        raise UsageError(f"{source}: unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise UsageError(
            f'{source}: format: not a fleetsim baseline (expected "format": "{BASELINE_FORMAT}")'
        )
    if doc.get("version") != BASELINE_VERSION:
        raise UsageError(f"{source}: version: {doc.get('version')!r} is not {BASELINE_VERSION}")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise UsageError(f"{source}: metrics: expected an object of metric -> number")
    for name, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UsageError(f"{source}: metrics.{name}: expected a number or null, got {value!r}")
    return from_json(Baseline, doc, source)
