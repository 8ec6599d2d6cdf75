"""The lazy plan (issue 14) is the eager plan, byte for byte: the same operations, drops and per-device actions,
the same cut at duration + graceful_stop, the same counts; a cursor that keeps a partition and advances in
small steps hands each device exactly its eager actions; every process's digest is the same."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simulator.arrival import schedule
from simulator.plan import FleetPlan, build_plan
from simulator.plan_cursor import STARTS_RETAIN_US, PlannedStarts
from simulator.run.plans import bound_plan, plan_digest
from simulator.scenario.loader import load_scenario
from simulator.scenario.model import (
    ArrivalSpec,
    DeviceStage,
    Distribution,
    FleetSpec,
    LifecycleMixEntry,
    RampStage,
    RandomLifecycle,
    Scenario,
    ScriptedLifecycle,
    ScriptedStep,
)
from tests.unit.plan.eager_reference import eager_cut, eager_plan

SCENARIOS = sorted(Path(__file__).resolve().parents[3].joinpath("scenarios").glob("*.yaml"))
RANDOM = RandomLifecycle(outcomes=(("success", 0.5), ("rollback", 0.2), ("cancel", 0.2), ("download_exhausted", 0.1)),
                         download_duration=Distribution("uniform", low=5, high=40), download_error_probability=0.3,
                         double_update_probability=0.2)
SCRIPTED = ScriptedLifecycle((ScriptedStep("Acknowledged"), ScriptedStep("Downloading", delay=2),
                              ScriptedStep("Failure", code="Canceled", delay=3)))


def synthetic(name: str) -> Scenario:
    base = Scenario(name=name, seed=11, fleet=FleetSpec(devices=12), time_scale=20.0, duration=40.0,
                    graceful_stop=3.0, arrival=ArrivalSpec(model="poisson", rate=2.0),
                    lifecycle=(LifecycleMixEntry(weight=1.0, random=RANDOM),))
    variants: dict[str, Scenario] = {
        "reboots-cancels-retries": base,
        "mix": replace(base, lifecycle=(LifecycleMixEntry(weight=2.0, random=RANDOM, name="r"),
                                        LifecycleMixEntry(weight=1.0, scripted=SCRIPTED, name="s"))),
        "scripted": replace(base, lifecycle=(LifecycleMixEntry(weight=1.0, scripted=SCRIPTED),)),
        "ramp": replace(base, fleet=FleetSpec(devices=12, ramp=(DeviceStage(10.0, 6), DeviceStage(10.0, 12)))),
        "ramping-arrivals": replace(base, arrival=ArrivalSpec(model="ramping", start_rate=0.5,
                                                              stages=(RampStage(20.0, 4.0), RampStage(20.0, 1.0)))),
        "burst-drops": replace(base, arrival=ArrivalSpec(model="burst", count=30, start=1.0)),
        "constant-long-cut": replace(base, time_scale=2.0, arrival=ArrivalSpec(model="constant", rate=1.0)),
    }
    return variants[name]


def scenarios() -> list[tuple[str, Scenario]]:
    named = [(path.name, load_scenario(str(path), {})) for path in SCENARIOS]
    names = ["reboots-cancels-retries", "mix", "scripted", "ramp", "ramping-arrivals", "burst-drops",
             "constant-long-cut"]
    return named + [(n, synthetic(n)) for n in names]


CASES = scenarios()


def per_device(plan: FleetPlan) -> list[list[object]]:
    actions: list[list[object]] = [[] for _ in plan.device_ids]
    for step in plan.steps():
        if step is not None:
            actions[step.device].extend(step.actions)
    return actions


@pytest.mark.parametrize(("name", "scenario"), CASES, ids=[c[0] for c in CASES])
def test_lazy_stream_is_the_eager_plan_byte_for_byte(name: str, scenario: Scenario) -> None:
    eager = eager_plan(scenario, schedule)
    lazy = build_plan(scenario)
    assert lazy.operations == eager.operations
    assert [repr(a) for a in per_device(lazy)] == [repr(list(a)) for a in eager.actions]
    totals = lazy.totals
    assert (totals.operations, totals.dropped) == (len(eager.operations), eager.dropped)
    assert totals.planned_events == sum(1 for acts in eager.actions for a in acts if a.kind == "publish")
    assert totals.in_flight == sum(1 for op in eager.operations if op.end_us > lazy.cut_us)
    assert totals.last_offset_us == max((a.offset_us for acts in eager.actions for a in acts), default=0)
    if name == "burst-drops":
        assert eager.dropped > 0


@pytest.mark.parametrize(("name", "scenario"), CASES, ids=[c[0] for c in CASES])
def test_the_cut_applied_as_operations_are_generated_is_the_eager_cut(name: str, scenario: Scenario) -> None:
    eager = eager_cut(eager_plan(scenario, schedule), scenario.duration, scenario.graceful_stop)
    bounded = bound_plan(build_plan(scenario), scenario.duration, scenario.graceful_stop)
    assert bounded.known_cut() is None and bounded.end_s == bounded.end_bound_s  # nothing generated yet
    assert [repr(a) for a in per_device(bounded.plan)] == [repr(list(a)) for a in eager.actions]
    cut = bounded.cut
    ids = bounded.plan.device_ids
    assert cut.operation_ids == tuple((ids[d], uuid) for d, uuid in eager.cut_ids)
    assert (cut.cut_operations, cut.cut_events, cut.in_flight_at_duration) == (
        len(eager.cut_ids), eager.cut_events, eager.in_flight)
    last_s = max((a.offset_us for acts in eager.actions for a in acts), default=0) / 1e6
    assert bounded.end_s == max(scenario.duration, last_s) + 2.0 <= bounded.end_bound_s
    if name == "constant-long-cut":
        assert cut.cut_operations > 0


@pytest.mark.parametrize("workers", [1, 3])
def test_a_cursor_hands_each_kept_device_its_actions_whatever_the_steps(workers: int) -> None:
    scenario = synthetic("mix")
    eager = eager_cut(eager_plan(scenario, schedule), scenario.duration, scenario.graceful_stop).actions
    digests = set()
    for worker in range(workers):
        bounded = bound_plan(build_plan(scenario), scenario.duration, scenario.graceful_stop)
        plan = bounded.plan
        mine = plan.partition(worker, workers)
        cursor = plan.cursor
        cursor.keep(mine)
        got: dict[int, list[object]] = {i: [] for i in mine}
        for until_us in range(0, round(scenario.duration * 1e6) + 1, 700_000):
            for index in cursor.advance(until_us):
                assert index in got  # only kept devices are handed actions
                taken = cursor.take(index)
                assert all(a.offset_us >= 0 for a in taken)
                got[index].extend(taken)
            assert cursor.horizon_us >= until_us
        cursor.finish()
        for index in mine:
            got[index].extend(cursor.take(index))
            assert cursor.exhausted(index)
        assert {i: repr(a) for i, a in got.items()} == {i: repr(list(eager[i])) for i in mine}
        digests.add(bounded.digest)
        assert bounded.digest == plan_digest(plan)  # the cursor's running hash is a whole pass's
    assert len(digests) == 1


def test_a_cursor_generates_only_up_to_its_horizon() -> None:
    scenario = synthetic("reboots-cancels-retries")
    plan = build_plan(scenario)
    cursor = plan.cursor
    cursor.keep(range(len(plan.device_ids)))
    cursor.advance(10_000_000)
    handed = [a for i in range(len(plan.device_ids)) for a in cursor.take(i)]
    assert handed and not cursor.done
    # Every operation arriving by 10 s is handed over whole, none arriving later.
    expected = [a for step in plan.steps() if step is not None and step.at_us <= 10_000_000 for a in step.actions]
    later = [a for step in plan.steps() if step is not None and step.at_us > 10_000_000 for a in step.actions]
    assert later and sorted(map(repr, handed)) == sorted(map(repr, expected))


def test_the_digest_depends_on_the_plan() -> None:
    scenario = synthetic("mix")
    assert plan_digest(build_plan(scenario)) == build_plan(scenario).totals.digest
    assert plan_digest(build_plan(replace(scenario, seed=12))) != plan_digest(build_plan(scenario))


def test_keeping_a_device_after_the_plan_started_is_refused() -> None:
    plan = build_plan(synthetic("mix"))
    plan.cursor.keep([0])
    plan.cursor.advance(1_000_000)
    plan.cursor.keep([0])  # already kept: nothing changes
    with pytest.raises(RuntimeError, match="after the plan started"):
        plan.cursor.keep([1])


def test_planned_starts_forget_operations_long_started() -> None:
    starts = PlannedStarts()
    starts.run_start_wall = 1000.0
    for n in range(1000):
        starts.add(("dev", f"u{n}"), n * 1_000_000)
    assert starts[("dev", "u999")] == 1000.0 + 999.0
    # Kept: the operations that started at most STARTS_RETAIN_US before the newest.
    assert len(starts) == STARTS_RETAIN_US // 1_000_000 + 1
    assert ("dev", "u0") not in starts and starts.get(("dev", "u0"), -1.0) == -1.0


def test_mix_draws_in_chunks_are_the_whole_draw() -> None:
    """The planner takes the mix entries' uniforms in chunks from the arrival stream: the same numbers."""
    whole = np.random.default_rng(5).random(10)
    rng = np.random.default_rng(5)
    chunked = np.concatenate([rng.random(3), rng.random(3), rng.random(4)])
    assert whole.tolist() == chunked.tolist()

