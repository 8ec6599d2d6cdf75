"""Baselines and `fleetsim compare`: direction, tolerance, environment mismatch, exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import main
from simulator.errors import UsageError
from simulator.metrics.run_summary import RunSummary
from simulator.outputs.baseline import Baseline, read_baseline, write_baseline
from simulator.outputs.baseline import build_baseline as _build_baseline
from simulator.outputs.compare import Comparison, format_markdown, parse_tolerance
from simulator.outputs.compare import compare_run as _compare_run

ENV = {"python": "3.11.7", "cpu_count": 2, "cpu_model": "Test CPU", "platform": "linux"}


def _summary(p99: float = 40.0, lost: int = 0, delivered_eps: float = 100.0) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "scenario": "ci-regression",
        "seed": 1,
        "started_at": "2026-01-01T00:00:00Z",
        "started_at_epoch": 1767225600.0,
        "devices": 30,
        "duration_s": 15.0,
        "transport": "lean",
        "target": "embedded",
        "verdict": "ok",
        "latency_trustworthy": True,
        "latency_ms": {"ack": {"p50": 10.0, "p99": p99}},
        "events": {"lost": lost},
        "rate": {"delivered_eps": delivered_eps},
        "environment": dict(ENV),
        "extra": {"broker": "mosquitto"},
    }


def build_baseline(summary: dict[str, Any]) -> Baseline:
    return _build_baseline(RunSummary.from_json(summary))


def compare_run(base: Baseline, run: dict[str, Any], tol: float) -> Comparison:
    return _compare_run(base, RunSummary.from_json(run), tol)


def _verdicts(base: Baseline, run: dict[str, Any], tol: float) -> dict[str, str]:
    return {r.metric: r.verdict for r in compare_run(base, run, tol).rows}


def test_a_20_percent_p99_regression_is_flagged() -> None:
    comparison = compare_run(build_baseline(_summary(p99=40.0)), _summary(p99=48.0), 0.10)
    row = next(r for r in comparison.rows if r.metric == "ack_latency_p99_ms")
    assert row.verdict == "REGRESSION" and row.delta_pct == pytest.approx(20.0)
    assert [r.metric for r in comparison.regressions] == ["ack_latency_p99_ms"]
    assert "**1 regression(s) beyond 10%:** ack_latency_p99_ms" in format_markdown(comparison)


def test_a_5_percent_p99_change_passes_at_10_percent_tolerance() -> None:
    comparison = compare_run(build_baseline(_summary(p99=40.0)), _summary(p99=42.0), 0.10)
    assert comparison.regressions == []
    assert (
        _verdicts(build_baseline(_summary(p99=40.0)), _summary(p99=42.0), 0.10)["ack_latency_p99_ms"] == "ok"
    )


def test_direction_comes_from_lower_is_better() -> None:
    base = build_baseline(_summary(delivered_eps=100.0, p99=40.0))
    verdicts = _verdicts(base, _summary(delivered_eps=80.0, p99=30.0), 0.10)
    assert verdicts["delivered_eps"] == "REGRESSION"  # a rate going down is bad
    assert verdicts["ack_latency_p99_ms"] == "improved"
    assert verdicts["e2e_latency_p99_ms"] == "n/a"  # no value on either side: neither pass nor fail


def test_zero_baseline_regresses_on_any_loss() -> None:
    assert _verdicts(build_baseline(_summary(lost=0)), _summary(lost=1), 0.5)["lost"] == "REGRESSION"
    assert _verdicts(build_baseline(_summary(lost=0)), _summary(lost=0), 0.5)["lost"] == "ok"


def test_unlike_machines_are_flagged_not_failed() -> None:
    run = _summary()
    run["environment"]["cpu_model"] = "Other CPU"
    run["transport"] = "sdk"
    comparison = compare_run(build_baseline(_summary()), run, 0.10)
    assert {key for key, _, _ in comparison.env_mismatches} == {"cpu_model", "transport"}
    text = format_markdown(comparison)
    assert (
        "comparison across unlike machines" in text
        and "cpu_model: baseline `Test CPU`, run `Other CPU`" in text
    )


def test_parse_tolerance() -> None:
    assert parse_tolerance("10%") == pytest.approx(0.10)
    assert parse_tolerance("5") == pytest.approx(0.05)
    assert parse_tolerance("0.2") == pytest.approx(0.2)
    with pytest.raises(UsageError):
        parse_tolerance("ten")


def _run_dir(root: Path, summary: dict[str, Any]) -> Path:
    root.mkdir(parents=True)
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def test_cli_baseline_then_compare_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_run = _run_dir(tmp_path / "base", _summary(p99=40.0))
    baseline = tmp_path / "baselines" / "ci.json"
    assert main(["baseline", str(base_run), "--out", str(baseline)]) == 0
    assert read_baseline(baseline).metrics["ack_latency_p99_ms"] == 40.0
    slow = _run_dir(tmp_path / "slow", _summary(p99=48.0))
    ok = _run_dir(tmp_path / "ok", _summary(p99=42.0))
    capsys.readouterr()
    assert main(["compare", str(slow), "--baseline", str(baseline), "--tolerance", "10%"]) == 1
    assert "| ack_latency_p99_ms (ms) | 40 | 48 | +20.0% | **REGRESSION** |" in capsys.readouterr().out
    report = tmp_path / "diff.md"
    assert (
        main(
            [
                "compare",
                str(ok),
                "--baseline",
                str(baseline),
                "--metric",
                "ack_latency_p99_ms",
                "--out",
                str(report),
            ]
        )
        == 0
    )
    assert "No regression beyond 10%." in report.read_text()
    other = copy.deepcopy(_summary(p99=42.0))
    other["environment"]["cpu_count"] = 64
    unlike = _run_dir(tmp_path / "unlike", other)
    assert main(["compare", str(unlike), "--baseline", str(baseline)]) == 0
    assert main(["compare", str(unlike), "--baseline", str(baseline), "--strict-env"]) == 1


def test_bad_baseline_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(UsageError, match="not a fleetsim baseline"):
        read_baseline(bad)
    run = _run_dir(tmp_path / "r", _summary())
    assert main(["compare", str(run), "--baseline", str(bad)]) == 2
    assert "not a fleetsim baseline" in capsys.readouterr().err
    write_baseline(bad, build_baseline(_summary()))
    assert main(["compare", str(run), "--baseline", str(bad), "--metric", "no_such_metric"]) == 2


def test_baseline_refuses_a_run_whose_verdict_is_not_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _summary(lost=118)
    bad["verdict"], bad["verdict_reasons"] = "generator_saturated", ["generator CPU 97% >= 90% of a core"]
    run = _run_dir(tmp_path / "bad", bad)
    out = tmp_path / "baselines" / "ci.json"
    capsys.readouterr()
    assert main(["baseline", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verdict: generator_saturated (generator CPU 97% >= 90% of a core)" in err[0]
    assert "--force" in err[0] and not out.exists()
    assert main(["baseline", str(run), "--out", str(out), "--force"]) == 0
    assert "kept with --force" in capsys.readouterr().out
    assert read_baseline(out).verdict == "generator_saturated"
