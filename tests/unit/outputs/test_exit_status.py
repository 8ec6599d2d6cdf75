"""Exit codes that say why (issue 15 item 2): the code, and the console's last lines naming every breach."""

from __future__ import annotations

import dataclasses

from simulator.metrics.health import INCOMPLETE
from simulator.metrics.run_summary import RunSummary
from simulator.outputs.exit_status import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLDS,
    exit_status,
)
from simulator.outputs.terminal import format_summary
from simulator.outputs.thresholds import evaluate_thresholds

BASE = RunSummary.from_json({
    "scenario": "gate", "seed": 1, "started_at": "2026-01-01T00:00:00Z", "started_at_epoch": 0.0,
    "duration_s": 10.0, "devices": 3, "transport": "lean", "target": "embedded",
    "latency_ms": {"ack": {"p99": 80.5, "count": 10}}, "events": {"lost": 0}, "accounting": {"lost": 0},
})


def _judged(summary: RunSummary, *thresholds: tuple[str, str], on_missing: str = "skip") -> RunSummary:
    assert on_missing in ("fail", "skip")
    report = evaluate_thresholds(summary, thresholds, "fail" if on_missing == "fail" else "skip")
    return dataclasses.replace(summary, thresholds=report)


def test_a_breach_exits_1_and_the_last_lines_name_it() -> None:
    s = _judged(BASE, ("ack_latency_p99_ms", "< 50"), ("lost", "== 0"))
    status = exit_status(s, partial=False)
    assert status.code == EXIT_THRESHOLDS
    assert status.reasons == ("threshold breached: ack_latency_p99_ms: observed 80.5 ms, required < 50",)
    last = format_summary(s, status, run_dir="results/x").rstrip().splitlines()[-5:]
    assert last == ["results: results/x", "thresholds: 1/2 passed, 1 breached",
                    "  BREACHED ack_latency_p99_ms: observed 80.5 ms, required < 50", "verdict: ok",
                    "exit 1: thresholds breached"]


def test_unknown_is_named_and_fails_only_on_request() -> None:
    skip = _judged(BASE, ("e2e_latency_p99_ms", "< 50"))
    status = exit_status(skip, partial=False)
    assert status.code == EXIT_OK
    text = format_summary(skip, status)
    assert "  unknown e2e_latency_p99_ms: observed no value, required < 50 (no value in this run" in text
    assert "1 unknown (on_missing: skip)" in text
    strict = _judged(BASE, ("e2e_latency_p99_ms", "< 50"), on_missing="fail")
    assert exit_status(strict, partial=False).code == EXIT_THRESHOLDS
    assert "  BREACHED e2e_latency_p99_ms: observed no value" in format_summary(strict, exit_status(strict,
                                                                                                    partial=False))


def test_incomplete_and_invalid_verdicts_exit_non_zero_unless_allowed() -> None:
    for verdict in (INCOMPLETE, "invalid_plan"):
        s = dataclasses.replace(BASE, verdict=verdict, verdict_reasons=("3 of 9 planned events never offered",))
        status = exit_status(s, partial=False)
        assert status.code == EXIT_INCOMPLETE
        assert status.reasons[0].startswith(f"verdict {verdict}: 3 of 9 planned events never offered")
        assert format_summary(s, status).rstrip().splitlines()[-1].startswith(f"exit 4: verdict {verdict}")
        assert exit_status(s, partial=False, allow_incomplete=True).code == EXIT_OK


def test_an_interrupted_run_still_reports_its_thresholds() -> None:
    s = dataclasses.replace(_judged(BASE, ("ack_latency_p99_ms", "< 50")), partial=True)
    status = exit_status(s, partial=True)
    assert status.code == EXIT_INTERRUPTED
    text = format_summary(s, status)
    assert "  BREACHED ack_latency_p99_ms: observed 80.5 ms, required < 50" in text
    assert text.rstrip().splitlines()[-1] == "exit 130: interrupted: partial results"
