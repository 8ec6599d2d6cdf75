"""Pure helpers of the benchmarks (bench/): statistics, goals, tables, profile folding, phase binning."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.common import (
    alternate,
    check_goal,
    markdown_table,
    median,
    percentile,
    ratio,
    text_table,
)
from bench.fleet_runs import record_stats
from bench.latency_truth import phase_p50s
from bench.profile_hot_path import top_frames
from bench.run_all import summary_rows
from bench.scale_out import scenario_yaml
from bench.throughput import summarize


def test_median_skips_missing_samples() -> None:
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5
    assert median([None, None]) is None


def test_ratio_rounds_and_refuses_missing_or_zero() -> None:
    assert ratio(3000.0, 1000.0) == 3.0
    assert ratio(2.0, 3.0) == 0.667
    assert ratio(None, 1.0) is None
    assert ratio(1.0, 0.0) is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_alternate_interleaves_systems_round_by_round() -> None:
    assert alternate(["a", "b"], 2) == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]


@pytest.mark.parametrize(
    ("value", "goal", "ok"),
    [
        (2.1, ">= 2.0", True),
        (1.9, ">= 2.0", False),
        (50.0, "<= 50", True),
        (4.9, "< 5", True),
        (-0.8, "abs <= 1.0", True),
        (-1.2, "abs <= 1.0", False),
        (40.9, "within 40 +- 1", True),
        (42.1, "within 40 +- 1", False),
        (None, ">= 1", None),
    ],
)
def test_check_goal(value: float | None, goal: str, ok: bool | None) -> None:
    assert check_goal(value, goal) is ok


def test_check_goal_names_a_bad_goal() -> None:
    with pytest.raises(ValueError, match="goal '~= 3'"):
        check_goal(1.0, "~= 3")


def test_tables_render_missing_cells_and_verdicts() -> None:
    rows: list[dict[str, object]] = [
        {"metric": "a|b", "value": 1234.5, "result": True},
        {"metric": "c", "value": None, "result": False},
    ]
    text = text_table(rows, ["metric", "value", "result"]).splitlines()
    assert text[0].split() == ["metric", "value", "result"]
    assert text[2].split() == ["a|b", "1,234", "pass"]
    assert text[3].split() == ["c", "-", "FAIL"]
    md = markdown_table(rows, ["metric", "value", "result"]).splitlines()
    assert md[0] == "| metric | value | result |"
    assert md[1] == "|---|---|---|"
    assert md[2] == "| a\\|b | 1,234 | pass |"


def test_top_frames_counts_self_and_total_time() -> None:
    folded = ["main;loop;send 6", "main;loop;recv 3", "main;encode 1", "garbage line"]
    frames = top_frames(folded)
    assert frames["self"][0] == ("send", 60.0)
    assert dict(frames["total"])["main"] == 100.0
    assert dict(frames["total"])["loop"] == 90.0
    assert top_frames([]) == {"self": [], "total": []}


def test_phase_p50s_bins_by_send_time_and_skips_settling() -> None:
    # phase 0 (delay 0): sends at 100.0..101.9; phase 1 (delay 10): 102.0..103.9; settle 0.5 s
    samples = [(100.2, 99.0), (100.6, 2.0), (101.0, 3.0), (102.1, 99.0), (102.7, 42.0), (103.5, 44.0)]
    phases = phase_p50s(samples, start=100.0, phase_s=2.0, delays=[0.0, 10.0], settle_s=0.5)
    assert [p["samples"] for p in phases] == [2, 2]
    assert [p["p50_ms"] for p in phases] == [2.0, 42.0]
    assert [p["delay_ms"] for p in phases] == [0.0, 10.0]


def test_record_stats_lag_rate_and_overruns() -> None:
    # 11 events planned 0.1 s apart; all sent 2 ms late except one 20 ms late; acked 3 ms after sending
    recs = []
    for k in range(11):
        intended = 1000.0 + k * 0.1
        sent = intended + (0.020 if k == 5 else 0.002)
        recs.append(SimpleNamespace(intended=intended, sent=sent, acked=sent + 0.003, error=None))
    stats = record_stats(recs, planned_events=11, duration_s=1.1)
    assert stats["sent"] == 11 and stats["acked"] == 11 and stats["errors"] == 0
    assert stats["send_lag_ms"]["p50"] == pytest.approx(2.0, abs=1e-6)
    assert stats["send_lag_ms"]["max"] == pytest.approx(20.0, abs=1e-6)
    assert stats["overruns"]["lag_gt_5ms"] == 1
    assert stats["intended_rate"] == pytest.approx(10.0)
    assert stats["rate_error_pct"] == pytest.approx(0.0, abs=1e-6)
    assert stats["ack_ms"]["p50"] == pytest.approx(3.0, abs=1e-6)


def test_record_stats_mean_rate_is_a_fit_not_the_first_to_last_span() -> None:
    # 5,001 sends 1 ms apart, all on time except the last, 75 ms late (a stall at the end)
    recs = [SimpleNamespace(intended=k * 0.001, sent=k * 0.001 + (0.075 if k == 5000 else 0.0), acked=None,
                            error=None) for k in range(5001)]
    stats = record_stats(recs, planned_events=5001, duration_s=5.0)
    assert stats["rate_error_first_to_last_pct"] == pytest.approx(100 * (5.0 / 5.075 - 1), abs=1e-3)  # -1.48%
    assert abs(stats["rate_error_pct"]) < 0.01  # the one outlier barely moves the fitted mean rate
    # a schedule kept 2% slow throughout is a 2% error by either measure
    slow = [SimpleNamespace(intended=k * 0.001, sent=k * 0.001 * 1.02, acked=None, error=None) for k in range(1001)]
    assert record_stats(slow, 1001, 1.0)["rate_error_pct"] == pytest.approx(100 * (1 / 1.02 - 1), abs=1e-3)


def test_throughput_summary_medians_and_ratios() -> None:
    runs = [
        {"devices": 1000, "system": "engine", "events_per_s": 3000.0, "cpu_us_per_event": 300.0},
        {"devices": 1000, "system": "engine", "events_per_s": 3400.0, "cpu_us_per_event": 250.0},
        {"devices": 1000, "system": "engine", "events_per_s": 3200.0, "cpu_us_per_event": 200.0},
        {"devices": 1000, "system": "paho", "events_per_s": 4000.0, "cpu_us_per_event": 125.0},
        {"devices": 1000, "system": "mqttuser", "events_per_s": 1600.0, "cpu_us_per_event": 500.0},
        {"devices": 1000, "system": "mqttuser", "error": "timeout"},
    ]
    out = summarize(runs, [1000], ["engine", "paho", "mqttuser"])["1000"]
    engine = out["systems"]["engine"]
    assert engine["events_per_s_median"] == 3200.0
    assert engine["n"] == 3
    assert engine["events_per_cpu_s_median"] == 4000.0  # median of 3333.3, 4000, 5000 events per CPU-second
    assert out["systems"]["mqttuser"]["failed_runs"] == 1
    assert out["systems"]["mqttuser"]["n"] == 1
    assert out["ratios"] == {"engine/mqttuser": 2.0, "engine/paho": 0.8}
    assert out["cpu_ratios"] == {"engine/mqttuser": 2.0, "engine/paho": 0.5}
    assert out["ratio_n"] == {"engine/mqttuser": 1, "engine/paho": 1}  # the smaller n of the two medians


def test_a_system_not_attempted_at_a_size_has_no_row_and_a_failed_one_shows_dash() -> None:
    runs = [
        {"devices": 100, "system": "sdk", "error": "exit code 1"},
        {"devices": 100, "system": "paho", "events_per_s": 4000.0, "cpu_us_per_event": 125.0},
        {"devices": 1000, "system": "paho", "events_per_s": 3000.0, "cpu_us_per_event": 150.0},
    ]
    summary = summarize(runs, [100, 1000], ["sdk", "paho"])
    assert summary["1000"]["systems"]["sdk"]["runs"] == 0  # skipped above --sdk-max-devices
    rows = {r["metric"]: r for r in summary_rows({"throughput": {"summary": summary}})}
    assert "sdk events/s @ 1000 devices" not in rows
    failed = rows["sdk events/s @ 100 devices"]
    assert (failed["value"], failed["n"]) == (None, 0)
    assert rows["paho events per CPU-second @ 1000 devices"]["value"] == 6666.7


def test_summary_rows_judge_goals_and_tolerate_missing_results() -> None:
    docs = {
        "throughput": {
            "goals": {
                "engine/mqttuser": {"value": 2.5, "devices": 1000, "n": 3, "goal": ">= 2.0"},
                "engine/paho": {"value": 0.5, "devices": 1000, "n": 3, "goal": ">= 0.7"},
            }
        },
        "scale_out": {
            "goals": {"two_workers_over_one": {"value": 1.8}},
            "runs": [{"processes": p, "acked_eps": 100.0 * p} for p in (1, 2, 1, 2, 1)] + [{"processes": 2}],
        },
    }
    rows = {r["metric"]: r for r in summary_rows(docs)}
    mqttuser = rows["engine/mqttuser events per CPU-second ratio @ 1000 devices"]
    assert (mqttuser["result"], mqttuser["n"]) == (True, 3)
    assert rows["engine/paho events per CPU-second ratio @ 1000 devices"]["result"] is False
    so = rows["2 workers / 1 process acked events/s"]
    assert (so["result"], so["n"]) == (True, 2)  # 3 one-process figures, 2 two-worker figures: n = 2
    rss = rows["RSS per device (KB)"]
    assert (rss["value"], rss["n"], rss["result"]) == (None, 0, None)


def test_scale_out_scenario_passes_the_real_loader(tmp_path: Path) -> None:
    from simulator.scenario.loader import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(scenario_yaml(devices=40, events_per_s=200.0, duration_s=3.0))
    scenario = load_scenario(str(path), {})
    assert scenario.fleet.devices == 40
    assert scenario.arrival.rate == 100.0  # two events per operation
    assert scenario.duration == 3.0


def test_steady_scenario_offers_the_asked_event_rate() -> None:
    from bench.fleet_runs import steady_scenario
    from simulator.plan import build_plan

    plan = build_plan(steady_scenario(devices=10, events_per_s=20.0, duration_s=2.0))
    assert plan.dropped == 0
    assert plan.planned_events == 40  # 20 events/s for 2 s: 20 operations of Acknowledged + Failure


def test_pacing_ab_takes_medians_per_tree_and_leaves_failed_runs_out() -> None:
    from bench.pacing import _ab_row, _checked, _median_run

    def run(p99: float, error: float = 0.0) -> dict[str, object]:
        return {"sent": 10, "failed_devices": 0, "rate_error_pct": error, "ack_ms": {"p50": p99 / 10},
                "send_lag_ms": {"p50": p99 / 2, "p99": p99}}

    this = [run(3.0), run(1.0), run(2.0)]
    failed = _checked({"sent": 0, "failed_devices": 20, "send_lag_ms": {"p99": None}})
    base = [run(4.0, 1.0), failed, run(8.0, 3.0)]
    row = _ab_row(1000.0, this, base)
    assert row["n"] == 3 and row["failed"] == {"this": 0, "baseline": 1}
    assert row["this"]["lag_p99_ms"] == 2.0 and row["baseline"]["lag_p99_ms"] == 6.0  # the median of 4 and 8
    assert row["baseline"]["rate_error_pct"] == 2.0
    assert row["lag_p99_this_over_baseline"] == round(2.0 / 6.0, 3)
    assert _median_run(this)["send_lag_ms"] == {"p50": 1.0, "p99": 2.0}  # a real run, the median one
    assert _median_run(base) is base[2]  # failed runs sort last: the upper median of [4, 8, failed]
    assert "20 devices failed" in str(failed["error"])
