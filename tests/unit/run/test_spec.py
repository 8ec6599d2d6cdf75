"""RunSpec travels to workers as data; the plan is bounded by duration + graceful_stop before the run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.errors import ConfigErrors, UsageError
from simulator.generator.target import TargetInfo
from simulator.run.plans import DRAIN_S, bound_plan, plan_digest, plan_for
from simulator.run.spec import RunSettings, RunSpec
from simulator.scenario.loader import load_scenario, load_scenario_text

SCENARIOS = sorted(Path(__file__).resolve().parents[3].joinpath("scenarios").glob("*.yaml"))
TARGET = TargetInfo(kind="embedded", realm="fleetsim", pairing_url="https://127.0.0.1:1/pairing", agent_jwt="jwt",
                    ca_file="ca.crt", broker_override_devices=("a", "b"))

LONG = """\
name: long
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


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_survives_the_trip_to_a_worker(path: Path) -> None:
    scenario = load_scenario(path, {"devices": 7})
    settings = RunSettings(results_root=Path("r"), processes=3, spawn_rate=2.5, quiet=True)
    spec = RunSpec(scenario=scenario, settings=settings).with_target(TARGET)
    back = RunSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and back.scenario.extra == scenario.extra
    assert back.scenario.fleet.devices == 7  # the resolved value, not the file's
    assert plan_digest(plan_for(back.scenario)) == plan_digest(plan_for(scenario))


def test_a_spec_without_its_target_or_with_a_recording_is_not_shipped() -> None:
    spec = RunSpec(scenario=load_scenario_text(LONG))
    with pytest.raises(UsageError):
        spec.to_json()
    with pytest.raises(UsageError):
        RunSpec.from_json('{"scenario": {}}')


def test_the_digest_tells_plans_apart() -> None:
    scenario = load_scenario_text(LONG)
    assert plan_digest(plan_for(scenario)) == plan_digest(plan_for(scenario))
    assert plan_digest(plan_for(scenario)) != plan_digest(plan_for(replace(scenario, seed=2)))
    assert plan_digest(plan_for(scenario)) != plan_digest(plan_for(replace(scenario, fleet=replace(
        scenario.fleet, devices=7))))


def test_operations_outliving_the_graceful_stop_are_cut_at_the_duration() -> None:
    scenario = load_scenario_text(LONG)
    whole = plan_for(scenario)
    bounded = bound_plan(whole, 3.0, 3.0)
    cut_ids = {op for op in bounded.cut.operation_ids}
    drained = [op for op in whole.operations if 3.0e6 < op.end_us <= 6.0e6]
    cut = [op for op in whole.operations if op.end_us > 6.0e6]
    assert drained and cut and bounded.cut.cut_operations == len(cut)
    assert cut_ids == {(whole.device_ids[op.device], op.uuid) for op in cut}
    for op in drained:  # played whole
        assert bounded.plan.actions_for(op.device) == whole.actions_for(op.device)
    for op in cut:  # nothing after the duration
        kept = bounded.plan.actions_for(op.device)
        assert kept and all(a.offset_us + a.duration_us <= 3_000_000 for a in kept)
    assert bounded.plan.planned_events + bounded.cut.cut_events == whole.planned_events
    assert bounded.end_s == pytest.approx(max(3.0, bounded.plan.last_action_s) + DRAIN_S)
    assert bounded.end_s < whole.last_action_s


def test_nothing_is_cut_when_the_graceful_stop_covers_the_plan() -> None:
    scenario = load_scenario_text(LONG)
    whole = plan_for(scenario)
    bounded = bound_plan(whole, 3.0, whole.last_action_s + 60.0)
    assert bounded.cut.cut_operations == bounded.cut.cut_events == 0 and bounded.cut.to_jsonable()["reason"] == ""
    assert bounded.plan.planned_events == whole.planned_events
    assert bounded.end_s == pytest.approx(whole.last_action_s + DRAIN_S)


def test_graceful_stop_is_a_scenario_key_with_the_k6_default() -> None:
    assert load_scenario_text(LONG.replace("graceful_stop: 3s\n", "")).graceful_stop == 30.0
    assert load_scenario_text(LONG.replace("graceful_stop: 3s", "graceful_stop: 0s")).graceful_stop == 0.0
    with pytest.raises(ConfigErrors) as err:
        load_scenario_text(LONG.replace("graceful_stop: 3s", "graceful_stop: -1"), "long.yaml")
    assert "long.yaml:6: graceful_stop:" in str(err.value)


def test_a_worker_without_the_masters_ca_file_gets_the_shipped_one(tmp_path: Path) -> None:
    ca = tmp_path / "master" / "ca.crt"
    ca.parent.mkdir()
    ca.write_text("-----BEGIN CERTIFICATE-----\nfleetsim\n-----END CERTIFICATE-----\n")
    settings = RunSettings(state_dir=tmp_path / "worker-state", processes=2)
    spec = RunSpec(scenario=load_scenario_text(LONG), settings=settings).with_target(replace(TARGET,
                                                                                           ca_file=str(ca)))
    shipped = spec.to_json()
    assert RunSpec.from_json(shipped).target == spec.target  # the file is here (one host): the master's path
    ca.unlink()  # another host: no such file there
    target = RunSpec.from_json(shipped).target
    assert target is not None and Path(target.ca_file).parent == (tmp_path / "worker-state" / "worker-ca")
    assert Path(target.ca_file).read_text() == "-----BEGIN CERTIFICATE-----\nfleetsim\n-----END CERTIFICATE-----\n"
    assert Path(target.ca_file).stat().st_mode & 0o077 == 0


def test_the_masters_fence_and_arrival_forwarding_reach_the_workers() -> None:
    settings = RunSettings(results_root=Path("r"), processes=2, arrival_offset_s=0.25, arrival_uncertainty_s=0.01,
                           forward_arrivals=True)
    spec = RunSpec(scenario=load_scenario_text(LONG), settings=settings).with_target(TARGET)
    back = RunSpec.from_json(spec.to_json()).settings
    assert (back.forward_arrivals, back.arrival_offset_s, back.arrival_uncertainty_s) == (True, 0.25, 0.01)
    older = json.loads(spec.to_json())
    del older["settings"]["forward_arrivals"]  # a master from before forwarding: workers pull or ship as before
    assert RunSpec.from_json(json.dumps(older)).settings.forward_arrivals is False
