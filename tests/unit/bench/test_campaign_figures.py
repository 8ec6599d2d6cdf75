"""bench/campaign_figures.py: the play order and the figures of bench/campaign_capacity.py from synthetic runs
(no backend, no child process)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.baseline_tree import BaselineExportError, export_simulator
from bench.campaign_figures import (
    ISSUE_BASE,
    baseline_ratio_block,
    behind_schedule,
    difference_block,
    floor_block,
    goals_block,
    idle_cpu_ms_per_s,
    is_issue_base,
    pair_difference,
    play_order,
)


def _run(pair: int, size: str, operations: int, cpu_s: float, **extra: Any) -> dict[str, Any]:
    return {"pair": pair, "size": size, "operations": operations, "play_cpu_s": cpu_s,
            "cpu_ms_per_operation": round(cpu_s / operations * 1000, 3), "lost": 0, **extra}


def test_play_order_alternates_sizes_and_the_floor_follows_each_pair() -> None:
    assert play_order(2, baseline=False) == [
        (0, "engine", "small"), (0, "engine", "large"), (0, "floor", ""),
        (1, "engine", "small"), (1, "engine", "large"), (1, "floor", ""),
    ]


def test_play_order_interleaves_the_baseline_and_swaps_who_goes_first() -> None:
    order = play_order(2, baseline=True)
    assert order == [
        (0, "baseline", "small"), (0, "engine", "small"), (0, "baseline", "large"), (0, "engine", "large"),
        (0, "floor", ""),
        (1, "engine", "small"), (1, "baseline", "small"), (1, "engine", "large"), (1, "baseline", "large"),
        (1, "floor", ""),
    ]


def test_pair_difference_cancels_fixed_costs() -> None:
    # 2 s fixed + 7 ms per operation at both sizes: the difference is the 7 ms, each run's own figure is not.
    small, large = _run(0, "small", 400, 2.0 + 400 * 0.007), _run(0, "large", 800, 2.0 + 800 * 0.007)
    assert pair_difference(small, large) == 7.0
    assert small["cpu_ms_per_operation"] == 12.0


def test_pair_difference_counts_only_played_operations() -> None:
    small = _run(0, "small", 400, 4.0)
    large = _run(0, "large", 800, 6.0, dropped_operations=200)  # 600 played: 2 s over 200 more operations
    assert pair_difference(small, large) == 10.0


def test_pair_difference_is_missing_for_a_failed_run_or_equal_sizes() -> None:
    assert pair_difference(_run(0, "small", 400, 4.0), {"error": "exit code 1"}) is None
    assert pair_difference(None, _run(0, "large", 800, 6.0)) is None
    assert pair_difference(_run(0, "small", 400, 4.0), _run(0, "large", 400, 6.0)) is None


def test_difference_block_is_the_median_of_the_pairs_with_n() -> None:
    runs = [
        _run(0, "small", 400, 5.0), _run(0, "large", 800, 8.2),  # 8.0 ms
        _run(1, "small", 400, 5.0), _run(1, "large", 800, 7.6),  # 6.5 ms
        _run(2, "small", 400, 5.0), {"pair": 2, "size": "large", "error": "timeout after 600 s"},
        _run(3, "small", 400, 5.0), _run(3, "large", 800, 7.8),  # 7.0 ms
    ]
    block = difference_block(runs)
    assert block["pairs"] == [8.0, 6.5, None, 7.0]
    assert block["cpu_ms_per_operation"] == 7.0 and block["n"] == 3
    assert block["operations_per_core_s"] == 142.857
    assert block["cpu_us_per_otaevent"] == round(7000 / 26, 3)
    assert block["small_run_ms"] == [12.5, 12.5, 12.5, 12.5]
    assert block["large_run_ms"] == [10.25, 9.5, None, 9.75]
    assert block["failed_runs"] == 1


def test_difference_block_of_nothing_has_n_0() -> None:
    block = difference_block([])
    assert block["cpu_ms_per_operation"] is None and block["n"] == 0 and block["operations_per_core_s"] is None


def test_floor_block_is_the_median_of_its_runs() -> None:
    block = floor_block([{"cpu_ms_per_operation": 9.0}, {"error": "exit code 1"}, {"cpu_ms_per_operation": 8.0},
                         {"cpu_ms_per_operation": 8.5}])
    assert block["cpu_ms_per_operation"] == 8.5 and block["n"] == 3
    assert block["each_run"] == [9.0, None, 8.0, 8.5]


def test_goals_block_judges_the_medians_and_the_saturation_runs() -> None:
    difference = {"cpu_ms_per_operation": 6.0, "n": 3, "operations_per_core_s": 166.667}
    floor = {"cpu_ms_per_operation": 8.0, "n": 2}
    saturation = [
        {"capacity_factor": 0.9, "rate": 150.0, "lost": 0, "late_operations": 0, "dropped_operations": 0},
        {"capacity_factor": 1.5, "rate": 250.0, "lost": 0, "late_operations": 40, "dropped_operations": 2,
         "send_lag_ms": {"p99": 1363.7}},
    ]
    goals = goals_block(difference, floor, saturation)
    assert goals["cpu_ms_per_operation"] == {"value": 6.0, "n": 3, "goal": "<= 6.5"}
    assert goals["operations_per_core_s"]["value"] == 166.667 and goals["operations_per_core_s"]["goal"] == ">= 150"
    assert goals["engine_vs_floor_cpu"] == {"value": 0.75, "n": 2, "goal": None}
    assert goals["lost_at_0.9"] == {"value": 0, "n": 1, "goal": "<= 0", "rate": 150.0}
    assert goals["late_or_dropped_at_1.5"]["value"] == 42 and goals["late_or_dropped_at_1.5"]["late"] == 40
    assert goals["send_lag_p99_ms_at_1.5"]["value"] == 1363.7


def test_goals_block_without_saturation_runs_has_missing_values() -> None:
    goals = goals_block({"cpu_ms_per_operation": None, "n": 0}, {"cpu_ms_per_operation": 8.0, "n": 3},
                        [{"capacity_factor": 1.5, "error": "exit code 1"}])
    assert all(block["value"] is None and block["n"] == 0 for block in goals.values())


def test_idle_cpu_is_the_slope_of_the_samples_after_the_last_ack() -> None:
    # 100 ms/s while playing until t = 10, then 20 ms/s idle; the settle point is 12.
    samples = [(float(t), 0.1 * min(t, 10) + 0.02 * max(0, t - 10)) for t in range(0, 31)]
    assert idle_cpu_ms_per_s(samples, 12.0) == 20.0
    assert idle_cpu_ms_per_s(samples, 29.5) is None  # one sample left
    assert idle_cpu_ms_per_s([], 0.0) is None


def test_difference_block_reports_the_idle_share_at_the_measuring_rate() -> None:
    runs = [_run(0, "small", 400, 5.0, rate=40.0, idle_cpu_ms_per_s=24.0),
            _run(0, "large", 800, 8.0, rate=40.0, idle_cpu_ms_per_s=20.0),
            _run(1, "small", 400, 5.0, rate=40.0, idle_cpu_ms_per_s=None)]
    block = difference_block(runs)
    assert block["idle_cpu_ms_per_s"] == 22.0 and block["idle_n"] == 2
    assert block["idle_ms_per_operation_at_rate"] == 0.55


def test_a_run_behind_its_plan_is_flagged_and_its_pair_set_apart() -> None:
    assert not behind_schedule(_run(0, "small", 400, 5.0, send_lag_ms={"p99": 113.0}, late_operations=0))
    assert behind_schedule(_run(0, "small", 400, 5.0, send_lag_ms={"p99": 777.0}))
    assert behind_schedule(_run(0, "small", 400, 5.0, late_operations=3))
    assert not behind_schedule({"error": "exit code 1", "late_operations": 3})
    runs = [
        _run(0, "small", 200, 2.0), _run(0, "large", 400, 2.9, send_lag_ms={"p99": 1859.0}),  # 4.5 ms, starved
        _run(1, "small", 200, 2.0), _run(1, "large", 400, 4.4),  # 12.0 ms
        _run(2, "small", 200, 2.0), _run(2, "large", 400, 4.2),  # 11.0 ms
    ]
    block = difference_block(runs)
    assert block["pairs_behind"] == [True, False, False] and block["behind_pairs"] == 1
    assert block["cpu_ms_per_operation"] == 11.0 and block["n"] == 3
    assert block["cpu_ms_per_operation_on_schedule"] == 11.5 and block["n_on_schedule"] == 2
    goals = goals_block(block, {"cpu_ms_per_operation": 9.0, "n": 3}, [])
    assert goals["pairs_behind_schedule"] == {"value": 1, "n": 3, "goal": "<= 0"}


def test_baseline_ratio_is_the_median_of_each_pairs_ratio() -> None:
    # Pair 0: this tree 6 ms, the baseline 12 (0.5); pair 1: 5 and 12.5 (0.4); pair 2: 7 and 10 (0.7).
    engine = [_run(0, "small", 200, 1.2), _run(0, "large", 400, 2.4), _run(1, "small", 200, 1.0),
              _run(1, "large", 400, 2.0), _run(2, "small", 200, 1.4), _run(2, "large", 400, 2.8)]
    baseline = [_run(0, "small", 200, 2.4), _run(0, "large", 400, 4.8), _run(1, "small", 200, 2.5),
                _run(1, "large", 400, 5.0), _run(2, "small", 200, 2.0), _run(2, "large", 400, 4.0)]
    block = baseline_ratio_block(engine, baseline)
    assert block == {"value": 0.5, "n": 3, "pairs": [0.5, 0.4, 0.7]}


def test_baseline_ratio_skips_a_pair_with_a_failed_run() -> None:
    engine = [_run(0, "small", 200, 1.2), _run(0, "large", 400, 2.4), _run(1, "small", 200, 1.0),
              _run(1, "large", 400, 2.0)]
    baseline = [_run(0, "small", 200, 2.4), {"pair": 0, "size": "large", "error": "exit code 1"},
                _run(1, "small", 200, 2.5), _run(1, "large", 400, 5.0)]
    assert baseline_ratio_block(engine, baseline) == {"value": 0.4, "n": 1, "pairs": [None, 0.4]}


def test_goals_block_judges_the_ratio_to_the_issue_base_only_when_measured() -> None:
    difference = {"cpu_ms_per_operation": 6.0, "n": 3, "operations_per_core_s": 166.667}
    floor = {"cpu_ms_per_operation": 8.0, "n": 3}
    measured = goals_block(difference, floor, [], {"value": 0.45, "n": 3, "pairs": [0.4, 0.45, 0.5]})
    assert measured["engine_vs_issue_base_cpu"] == {"value": 0.45, "n": 3, "goal": "<= 0.5",
                                                    "base": ISSUE_BASE[:7], "pairs": [0.4, 0.45, 0.5]}
    absent = goals_block(difference, floor, [])
    assert absent["engine_vs_issue_base_cpu"]["value"] is None and absent["engine_vs_issue_base_cpu"]["n"] == 0


def test_an_unknown_baseline_rev_is_one_clear_error() -> None:
    try:
        export_simulator("no-such-revision-anywhere")
    except BaselineExportError as exc:
        assert "--baseline-rev no-such-revision-anywhere" in str(exc)
    else:
        raise AssertionError("an unknown revision exported")
    assert not is_issue_base("") and not is_issue_base("no-such-revision-anywhere")


def test_the_backend_cpu_per_operation_is_a_pair_difference_too() -> None:
    # Backend: 3 s fixed (the onboarding of the fleet) + 4 ms per operation at both sizes.
    runs = [_run(0, "small", 200, 1.2, backend_cpu_s=3.8), _run(0, "large", 400, 2.4, backend_cpu_s=4.6),
            _run(1, "small", 200, 1.2), _run(1, "large", 400, 2.4)]  # pair 1: a backend without a broker pid
    block = difference_block(runs)
    assert block["backend_cpu_ms_per_operation"] == 4.0 and block["backend_pairs"] == [4.0, None]
