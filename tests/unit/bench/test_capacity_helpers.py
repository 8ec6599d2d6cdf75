"""bench/capacity_helpers.py: counter interpolation, step windows, the saturation verdict, parsers."""

from __future__ import annotations

import argparse

import pytest

from bench.capacity_helpers import (
    StepEvidence,
    classify_step,
    connect_rate,
    counter_at,
    metric_value,
    parse_progress,
    parse_rates,
    rate_between,
    role_of,
    split_counts,
    step_windows,
)
from bench.fleet_scale import parse_runs


def test_parse_rates_accepts_k_suffix_and_rejects_bad_items() -> None:
    assert parse_rates("500, 1000,2k,2.5k") == [500.0, 1000.0, 2000.0, 2500.0]
    with pytest.raises(argparse.ArgumentTypeError, match="'fast' is not a number"):
        parse_rates("500,fast")
    with pytest.raises(argparse.ArgumentTypeError, match="must be > 0"):
        parse_rates("0")


def test_split_counts_balances_and_never_leaves_a_part_empty() -> None:
    assert split_counts(3001, 2) == [1501, 1500]
    assert split_counts(2, 4) == [1, 1]
    assert sum(split_counts(10_000, 3)) == 10_000


def test_step_windows_skip_the_settle_time_of_each_step() -> None:
    assert step_windows(100.0, [10.0, 10.0], 1.0) == [(101.0, 110.0), (111.0, 120.0)]
    # a short step keeps at least its second half
    assert step_windows(0.0, [1.0], 5.0) == [(0.5, 1.0)]


def test_counter_interpolates_between_samples_and_refuses_to_extrapolate() -> None:
    samples = [(0.0, 0.0), (1.0, 100.0), (3.0, 500.0)]
    assert counter_at(samples, 0.5) == 50.0
    assert counter_at(samples, 2.0) == 300.0
    assert counter_at(samples, 3.0) == 500.0
    assert counter_at(samples, 3.5) is None
    assert counter_at([], 1.0) is None
    assert rate_between(samples, 1.0, 3.0) == 200.0
    assert rate_between(samples, 1.0, 4.0) is None


def test_metric_value_reads_the_unlabelled_sample_only() -> None:
    text = (
        "# HELP fleetsim_collector_arrivals_total OTAEvents recorded\n"
        'fleetsim_collector_messages_total{kind="datastream"} 7\n'
        "fleetsim_collector_arrivals_total 1234\n"
    )
    assert metric_value(text, "fleetsim_collector_arrivals_total") == 1234.0
    assert metric_value(text, "fleetsim_collector_messages_total") is None
    assert metric_value(text, "missing") is None


def _evidence(**kw: object) -> StepEvidence:
    base: dict[str, object] = dict(offered=3000.0, sent=3000.0, acked=3000.0, delivered=3000.0,
                                   broker_cpu=40.0, collector_cpu=40.0, generator_cpu=(50.0, 50.0),
                                   generator_lag_p99_ms=5.0, dropped=0, machine_cpu=120.0, cores=2)
    base.update(kw)
    return StepEvidence(**base)  # type: ignore[arg-type]


def test_classify_step_names_the_saturated_side() -> None:
    assert classify_step(_evidence()) == ("ok", [])
    side, reasons = classify_step(_evidence(acked=2000.0, delivered=2000.0, broker_cpu=99.0))
    assert side == "broker" and "broker cpu 99%" in reasons[0]
    behind = _evidence(sent=2000.0, acked=2000.0, delivered=2000.0, generator_cpu=(97.0, 60.0))
    side, _ = classify_step(behind)
    assert side == "generator"
    side, _ = classify_step(_evidence(delivered=1000.0))
    assert side == "collector"
    side, _ = classify_step(_evidence(delivered=1000.0, collector_cpu=30.0, machine_cpu=195.0))
    assert side == "collector+machine"


def test_role_of_separates_broker_backend_and_generator() -> None:
    assert role_of("mosquitto", ["mosquitto", "-c", "x.conf"]) == "broker"
    assert role_of("python", ["python", "-m", "simulator.backend.amqtt_main", "--config", "c"]) == "broker"
    assert role_of("python", ["python", "-m", "simulator.backend", "--json"]) == "backend"
    assert role_of("python", ["python", "-m", "simulator", "run", "s.yaml"]) == "generator"
    assert role_of("python", ["python", "-m", "simulator.locust_adapter.worker", "f", "1"]) == "generator"


def test_progress_line_and_connect_rate() -> None:
    line = "[    3s] devices 450/1000 online | events/s offered 0 acked 0 delivered n/a | ack p50 - p99 -"
    assert parse_progress(line) == (450, 1000)
    assert parse_progress("fleetsim: only 10/20 devices online; starting anyway") is None
    rate = connect_rate([(10.0, 0), (11.0, 400), (12.0, 900), (12.5, 1000)], 1000)
    assert rate == {"seconds": 2.5, "mean_per_s": 400.0, "peak_per_s": 500.0, "online_max": 1000,
                    "complete": 1}
    assert connect_rate([(0.0, 0), (2.0, 10)], 20)["complete"] == 0
    assert connect_rate([], 5)["seconds"] is None


def test_parse_runs() -> None:
    assert parse_runs("lean:10000, sdk:1000") == [("lean", 10000), ("sdk", 1000)]
    with pytest.raises(argparse.ArgumentTypeError, match="expected lean:N or sdk:N"):
        parse_runs("memory:10")
