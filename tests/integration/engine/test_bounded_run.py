"""A bounded run: `duration` is the run's wall time; operations in flight then get `graceful_stop`, whatever
would run longer is cut before the run starts (counted with a reason in summary.json extra.cut, never lost),
and a campaign run that ends early says why."""

from __future__ import annotations

from pathlib import Path

from simulator.run.plans import bound_plan, plan_for
from simulator.scenario.loader import load_scenario
from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of

# Operations of 1..16 s of wall time arriving in the first 3 s: with seed 1 two end within the 3 s graceful
# stop (drained) and four later (cut). Unbounded, the plan would play for ~16 s; bounded, ~6 s.
LONG_OPERATIONS = """\
name: bounded
seed: 1
fleet: {devices: 6}
time_scale: 10
duration: 3s
graceful_stop: 3s
arrival: {model: constant, rate: 2, count: 6}
lifecycle:
  random:
    outcomes: {success: 1}
    download_duration: {uniform: [5s, 150s]}
    deploy_duration: 5s
    reboot_duration: 5s
"""


def test_duration_bounds_the_run_and_the_cut_is_counted(tiny_scenario: Path, tmp_path: Path) -> None:
    path = tmp_path / "bounded.yaml"
    path.write_text(LONG_OPERATIONS)
    scenario = load_scenario(path)
    whole = plan_for(scenario)
    bounded = bound_plan(whole, scenario.duration, scenario.graceful_stop)
    cut = bounded.cut
    # The scenario exercises all three cases (checked here so that a planner change cannot make it vacuous).
    assert whole.last_action_s > scenario.duration + scenario.graceful_stop
    assert 0 < cut.cut_operations < cut.in_flight_at_duration
    assert bounded.plan.planned_events + cut.cut_events == whole.planned_events

    results = tmp_path / "results"
    proc = run_fleetsim(["run", str(path), "--results", str(results), "--state-dir", str(tmp_path / "st")],
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{cut.cut_operations} operation(s) ({cut.cut_events} events) cut" in proc.stderr, proc.stderr
    summary = summary_of(only_run_dir(results))
    extra = summary["extra"]
    assert isinstance(extra, dict)
    assert extra["cut"]["operations"] == cut.cut_operations and extra["cut"]["events"] == cut.cut_events
    assert extra["cut"]["in_flight_at_duration"] == cut.in_flight_at_duration and extra["cut"]["reason"]
    assert len(extra["cut"]["operation_ids"]) == cut.cut_operations
    events = summary["events"]
    assert isinstance(events, dict)
    # Cut events are not planned for the run: every event it planned was sent and delivered, none lost.
    assert events["planned"] == events["sent"] == events["delivered"] == bounded.plan.planned_events
    assert events["lost"] == 0 and extra["not_attempted"] == 0
    # The run's own measured length is the bounded plan's (duration, drained operations, drain), not the
    # unbounded plan's.
    assert float(summary["duration_s"]) < whole.last_action_s  # type: ignore[arg-type]


CAMPAIGN = """\
name: early-campaign
seed: 9
fleet: {devices: 4, target_version: 1.1.0}
time_scale: 120
duration: 120s
mode: campaign
arrival: {model: burst, count: 1, start: 0s, phase: aligned}
campaign: {max_in_progress: 4, request_timeout: 5m, request_retries: 3, max_failure_percentage: 100}
lifecycle:
  random:
    outcomes: {success: 1}
    download_duration: 30s
    deploy_duration: 30s
    reboot_duration: 30s
"""


def test_a_campaign_that_finishes_early_says_why(tiny_scenario: Path, tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(CAMPAIGN)
    results = tmp_path / "results"
    proc = run_fleetsim(["run", str(path), "--results", str(results), "--state-dir", str(tmp_path / "st"),
                         "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "campaign finished: 4/4 operations final" in proc.stdout, proc.stdout
    summary = summary_of(only_run_dir(results))
    extra = summary["extra"]
    assert isinstance(extra, dict) and extra["end_reason"].startswith("campaign finished: 4/4 operations final")
    assert extra["cut"]["operations"] == 0


SLOW_CAMPAIGN = CAMPAIGN.replace("duration: 120s", "duration: 2s\ngraceful_stop: 1s").replace(
    "max_in_progress: 4", "max_in_progress: 1").replace("time_scale: 120", "time_scale: 10")


def test_a_campaign_still_running_after_its_graceful_stop_is_cut(tiny_scenario: Path, tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_CAMPAIGN)
    results = tmp_path / "results"
    proc = run_fleetsim(["run", str(path), "--results", str(results), "--state-dir", str(tmp_path / "st"),
                         "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = summary_of(only_run_dir(results))
    extra = summary["extra"]
    assert isinstance(extra, dict)
    campaign = extra["campaign"]
    final = sum(n for state, n in campaign["operations_by_state"].items() if state in ("success", "failure"))
    assert campaign["finished"] is False and final < 4  # one at a time, 9 s each: not done in 2 s + 1 s
    assert extra["cut"]["operations"] == 4 - final and extra["cut"]["reason"]
    assert extra["end_reason"] == (f"campaign not finished at duration + graceful_stop: {final}/4 operations "
                                   f"final, {4 - final} cut")
