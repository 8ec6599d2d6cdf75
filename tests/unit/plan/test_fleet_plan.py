"""Fleet plan: determinism (same seed => byte-identical `fleetsim plan`), partition, assignment, drops,
ids."""

from __future__ import annotations

import io
import itertools
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simulator.cli import main
from simulator.commands.plan import write_plan
from simulator.events import ActionKind
from simulator.ids import decode_device_id, device_id, is_device_id, request_uuid, sequential_index
from simulator.plan import build_plan, device_rng
from simulator.scenario.model import (
    ArrivalSpec,
    Distribution,
    FleetSpec,
    LifecycleMixEntry,
    RandomLifecycle,
    Scenario,
    ScriptedLifecycle,
    ScriptedStep,
)

SCENARIO = """\
name: plan-test
seed: 7
fleet: {devices: 6}
time_scale: 60
duration: 20s
arrival: {model: constant, rate: 1}
lifecycle:
  random:
    outcomes: {success: 0.5, rollback: 0.2, cancel: 0.2, download_exhausted: 0.1}
    download_error_probability: 0.2
    double_update_probability: 0.2
"""


def fixed_schedule(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Stand-in arrivals for tests that must not depend on simulator.arrival: one per `1/rate` s."""
    return np.arange(0.0, duration_s, 1.0 / spec.rate)


def scenario(devices: int = 4, seed: int = 3, **kw: object) -> Scenario:
    life = RandomLifecycle(outcomes=(("success", 0.6), ("rollback", 0.2), ("cancel", 0.2)),
                           download_duration=Distribution("uniform", low=10, high=40))
    base = Scenario(name="t", seed=seed, fleet=FleetSpec(devices=devices), time_scale=10.0, duration=12.0,
                    arrival=ArrivalSpec(model="constant", rate=1.0),
                    lifecycle=(LifecycleMixEntry(weight=1.0, random=life),))
    return replace(base, **kw)  # type: ignore[arg-type]


def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    assert main(["plan", str(path), *args]) == 0
    return capsys.readouterr().out


def test_cli_output_is_byte_identical_for_a_seed_and_differs_for_another(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_cli(tmp_path, capsys)
    assert first == run_cli(tmp_path, capsys)
    assert first != run_cli(tmp_path, capsys, "--seed", "8")
    lines = first.splitlines()
    assert len(lines) > 50 and lines[0].startswith('{"device_id":')
    more = run_cli(tmp_path, capsys, "--devices", "9")
    assert len({line.split('"')[3] for line in more.splitlines()}) > 6


def test_cli_lines_are_sorted_by_offset() -> None:
    plan = build_plan(scenario(), schedule_fn=fixed_schedule)
    out = io.StringIO()
    n = write_plan(plan, out)
    offsets = [float(line.split('"offset_ms":')[1].split(",")[0]) for line in out.getvalue().splitlines()]
    assert n == len(offsets) and offsets == sorted(offsets)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_partition_union_is_the_whole_plan(workers: int) -> None:
    plan = build_plan(scenario(devices=7), schedule_fn=fixed_schedule)
    parts = [plan.partition(w, workers) for w in range(workers)]
    assert sorted(i for p in parts for i in p) == list(range(7))
    assert all(i % workers == w for w, p in enumerate(parts) for i in p)
    union = [a for p in parts for i in p for a in plan.actions_for(i)]
    whole = [a for i in range(7) for a in plan.actions_for(i)]
    assert sorted(union, key=repr) == sorted(whole, key=repr) and len(whole) > 0


def test_device_streams_do_not_depend_on_fleet_size() -> None:
    assert device_rng(5, 3).random() == device_rng(5, 3).random()
    small = build_plan(scenario(devices=4, arrival=ArrivalSpec(model="constant", rate=0.25)),
                       schedule_fn=fixed_schedule)
    large = build_plan(scenario(devices=9, arrival=ArrivalSpec(model="constant", rate=0.25)),
                       schedule_fn=fixed_schedule)
    assert small.device_ids == large.device_ids[:4]
    # Arrivals every 4 s: each device gets one operation, in index order; the first 3 are the same.
    for i in range(3):
        assert small.actions_for(i) == large.actions_for(i)


def test_assignment_round_robin_and_drops_when_none_idle() -> None:
    plan = build_plan(scenario(devices=2, duration=5.0), schedule_fn=fixed_schedule)
    assert [op.device for op in plan.operations] == [0, 1]
    assert plan.dropped == 3  # operations take longer than 1 s: arrivals 2..4 find no idle device
    assert len(plan.operations) + plan.dropped == 5
    events = sum(1 for i in range(2) for a in plan.actions_for(i) if a.kind is ActionKind.PUBLISH)
    assert plan.planned_events == events
    assert plan.in_flight == sum(1 for op in plan.operations if op.end_us > plan.cut_us)


def test_idle_device_is_reused_after_its_operation_ends() -> None:
    plan = build_plan(scenario(devices=1, duration=60.0, time_scale=1000.0), schedule_fn=fixed_schedule)
    ops = plan.operations
    assert len(ops) > 1 and all(op.device == 0 for op in ops)
    assert all(b.start_us >= a.end_us for a, b in itertools.pairwise(ops))
    assert len({op.uuid for op in ops}) == len(ops)


def test_mix_entries_are_chosen_by_weight() -> None:
    scripted = ScriptedLifecycle((ScriptedStep("Acknowledged"),
                                  ScriptedStep("Failure", code="Canceled", delay=1)))
    mix = (LifecycleMixEntry(weight=1.0, random=RandomLifecycle(), name="r"),
           LifecycleMixEntry(weight=3.0, scripted=scripted, name="s"))
    plan = build_plan(scenario(devices=400, duration=400.0, lifecycle=mix), schedule_fn=fixed_schedule)
    names = Counter(op.mix for op in plan.operations)
    assert 0.65 < names["s"] / len(plan.operations) < 0.85


def test_device_ids_are_valid_and_deterministic() -> None:
    ids = [device_id(1, i) for i in range(50)]
    assert all(len(x) == 22 and is_device_id(x) for x in ids) and len(set(ids)) == 50
    assert ids == [device_id(1, i) for i in range(50)] and ids != [device_id(2, i) for i in range(50)]
    seq = device_id(1, 513, "sequential", "fleet")
    assert is_device_id(seq) and sequential_index(seq) == 513 and decode_device_id(seq).startswith(b"fleet")
    with pytest.raises(ValueError):
        device_id(1, 0, "sequential", "x" * 13)
    assert not is_device_id("too-short") and not is_device_id("A" * 21 + "B")


def test_request_uuids_are_uuid4_shaped() -> None:
    u = request_uuid(np.random.default_rng(0))
    assert len(u) == 36 and u[14] == "4" and u[19] in "89ab"
    assert u == request_uuid(np.random.default_rng(0))
