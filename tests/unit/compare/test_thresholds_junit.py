"""Thresholds against a RunSummary -> the report, and the JUnit XML a CI system reads: one testcase per
threshold, a <failure> naming the metric, the observed value and the requirement; a metric without a value is
`unknown` with its reason, a <skipped> case, and fails only with `on_missing: fail`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from simulator.metrics.run_summary import RunSummary
from simulator.outputs.junit import write_junit
from simulator.outputs.thresholds import evaluate_thresholds

SUMMARY = RunSummary.from_json({
    "scenario": "ci-regression", "seed": 1, "started_at": "2026-01-01T00:00:00Z", "started_at_epoch": 0.0,
    "duration_s": 10.0, "devices": 3, "transport": "lean", "target": "embedded",
    "latency_ms": {"ack": {"p99": 80.5, "count": 10}},
    "events": {"lost": 0},
    "rate": {"delivered_eps": 950.0},
    "ota": {"stuck": 2},
    "accounting": {"lost": 0},
})
THRESHOLDS = (
    ("ack_latency_p99_ms", "< 50"),
    ("lost", "== 0"),
    ("delivered_eps", ">= 900"),
    ("ota.stuck", "== 0"),
    ("e2e_latency_p99_ms", "< 100"),  # nothing recorded on the e2e path: no value
)


def test_breaches_are_reported_by_name_with_observed_and_required() -> None:
    report = evaluate_thresholds(SUMMARY, THRESHOLDS)
    assert report.passed is False
    by_metric = {r.metric: r for r in report.results}
    assert {m for m, r in by_metric.items() if r.status == "pass"} == {"lost", "delivered_eps"}
    assert by_metric["ack_latency_p99_ms"].reason == "observed 80.5, required < 50"
    assert by_metric["ota.stuck"].reason == "observed 2, required == 0"
    e2e = by_metric["e2e_latency_p99_ms"]
    assert (e2e.status, e2e.ok) == ("unknown", True)  # on_missing: skip (default) reports, does not fail
    assert e2e.reason.startswith("no value in this run")
    assert {r.metric for r in report.breached} == {"ack_latency_p99_ms", "ota.stuck"}


def test_unknown_fails_only_when_the_scenario_asks() -> None:
    strict = evaluate_thresholds(SUMMARY, (("e2e_latency_p99_ms", "< 100"),), on_missing="fail")
    assert strict.passed is False and strict.results[0].status == "unknown" and not strict.results[0].ok
    assert evaluate_thresholds(SUMMARY, (("e2e_latency_p99_ms", "< 100"),)).passed is True


def test_without_an_observer_the_reason_says_so() -> None:
    no_observer = RunSummary.from_json({**SUMMARY.to_json(), "accounting": None, "events": {"lost": None}})
    result = evaluate_thresholds(no_observer, (("lost", "== 0"),)).results[0]
    assert result.status == "unknown" and result.reason.startswith("no observer: delivered/lost unknown")


def test_all_met_passes() -> None:
    assert evaluate_thresholds(SUMMARY, (("lost", "== 0"), ("delivered_eps", ">= 900"))).passed is True


def test_junit_names_each_breach(tmp_path: Path) -> None:
    path = write_junit(tmp_path, "ci-regression", evaluate_thresholds(SUMMARY, THRESHOLDS))
    suite = ET.parse(path).getroot()
    assert (suite.tag, suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "testsuite", "fleetsim.ci-regression", "5", "2", "1")
    failures = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    assert failures["lost == 0"] is None and failures["delivered_eps >= 900"] is None
    ack = failures["ack_latency_p99_ms < 50"]
    assert ack is not None and ack.get("message") == "ack_latency_p99_ms: observed 80.5, required < 50"
    assert ack.get("type") == "threshold"
    skipped = {case.get("name"): case.find("skipped") for case in suite.iter("testcase")}
    e2e = skipped["e2e_latency_p99_ms < 100"]
    assert e2e is not None and "no value in this run" in str(e2e.get("message"))
