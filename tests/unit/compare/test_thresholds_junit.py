"""Thresholds against a summary -> the report, and the JUnit XML a CI system reads: one testcase per threshold,
a <failure> naming the metric, the observed value and the requirement; a metric without a value fails."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from simulator.outputs.junit import write_junit
from simulator.outputs.thresholds import evaluate_thresholds

SUMMARY = {
    "latency_ms": {"ack": {"p99": 80.5}},
    "events": {"lost": 0},
    "rate": {"delivered_eps": 950.0},
    "ota": {"stuck": 2},
}
THRESHOLDS = (
    ("ack_latency_p99_ms", "< 50"),
    ("lost", "== 0"),
    ("delivered_eps", ">= 900"),
    ("ota.stuck", "== 0"),
    ("e2e_latency_p99_ms", "< 100"),  # no observer in this run: no value
)


def test_breaches_are_reported_by_name_with_observed_and_required() -> None:
    report = evaluate_thresholds(SUMMARY, THRESHOLDS)
    assert report["passed"] is False
    by_metric = {r["metric"]: r for r in report["results"]}
    assert {m for m, r in by_metric.items() if r["ok"]} == {"lost", "delivered_eps"}
    assert by_metric["ack_latency_p99_ms"]["reason"] == "observed 80.5, required < 50"
    assert by_metric["ota.stuck"]["reason"] == "observed 2, required == 0"
    assert by_metric["e2e_latency_p99_ms"]["reason"] == "no value in this run"


def test_all_met_passes() -> None:
    assert evaluate_thresholds(SUMMARY, (("lost", "== 0"), ("delivered_eps", ">= 900")))["passed"] is True


def test_junit_names_each_breach(tmp_path: Path) -> None:
    path = write_junit(tmp_path, "ci-regression", evaluate_thresholds(SUMMARY, THRESHOLDS))
    suite = ET.parse(path).getroot()
    assert (suite.tag, suite.get("name"), suite.get("tests"), suite.get("failures")) == (
        "testsuite", "fleetsim.ci-regression", "5", "3")
    failures = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    assert failures["lost == 0"] is None and failures["delivered_eps >= 900"] is None
    ack = failures["ack_latency_p99_ms < 50"]
    assert ack is not None and ack.get("message") == "ack_latency_p99_ms: observed 80.5, required < 50"
    assert ack.get("type") == "threshold"
    e2e = failures["e2e_latency_p99_ms < 100"]
    assert e2e is not None and e2e.get("message") == "e2e_latency_p99_ms: no value in this run"
