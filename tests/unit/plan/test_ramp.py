"""Device ramp in the plan: exact online offsets, and no operation reaches a device before it is online."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simulator.plan import NEVER_ONLINE, build_plan, devices_online_at, online_offsets_us, ramp_spawn_rate
from simulator.scenario.model import ArrivalSpec, DeviceStage
from tests.unit.plan.test_fleet_plan import fixed_schedule, scenario

TWO_STAGES = (DeviceStage(duration=4.0, devices=10), DeviceStage(duration=4.0, devices=20))


def test_no_ramp_puts_every_device_online_at_zero() -> None:
    assert online_offsets_us((), 5) == (0, 0, 0, 0, 0)
    assert devices_online_at((), 123.0, 5) == 5


def test_two_linear_stages_give_exact_offsets() -> None:
    offsets = online_offsets_us(TWO_STAGES, 20)
    # 0 -> 10 over 4 s: device i when the ramp reaches i + 1, i.e. every 0.4 s; then 10 -> 20 over the next 4 s.
    assert offsets == tuple(400_000 * k for k in range(1, 11)) + tuple(4_000_000 + 400_000 * k
                                                                      for k in range(1, 11))


def test_offsets_round_up_to_the_microsecond() -> None:
    assert online_offsets_us((DeviceStage(duration=1.0, devices=3),), 3) == (333_334, 666_667, 1_000_000)


def test_flat_stage_and_devices_never_reached() -> None:
    ramp = (DeviceStage(duration=1.0, devices=2), DeviceStage(duration=2.0, devices=2),
            DeviceStage(duration=1.0, devices=4))
    assert online_offsets_us(ramp, 6) == (500_000, 1_000_000, 3_500_000, 4_000_000, NEVER_ONLINE, NEVER_ONLINE)


def test_instant_stage_brings_devices_online_at_its_end() -> None:
    ramp = (DeviceStage(duration=0.001, devices=3), DeviceStage(duration=1.0, devices=4))
    assert online_offsets_us(ramp, 4) == (334, 667, 1_000, 1_001_000)


def test_devices_online_at_counts_the_offsets_reached() -> None:
    ramp = (DeviceStage(duration=1.0, devices=3), *TWO_STAGES, DeviceStage(duration=2.0, devices=20))
    offsets = online_offsets_us(ramp, 25)
    for t_us in range(0, 12_000_000, 50_000):
        reached = sum(1 for t in offsets if t != NEVER_ONLINE and t <= t_us)
        assert devices_online_at(ramp, t_us / 1e6, 25) == reached, t_us
    assert devices_online_at(ramp, 100.0, 25) == 20


def test_spawn_rate_keeps_up_with_the_steepest_stage() -> None:
    assert ramp_spawn_rate(TWO_STAGES) == 2.5
    assert ramp_spawn_rate((DeviceStage(duration=10.0, devices=3),)) == 1.0  # at least 1 device/s
    assert ramp_spawn_rate((DeviceStage(duration=0.5, devices=100),)) == 200.0


def ramped(devices: int, ramp: tuple[DeviceStage, ...], **kw: object):  # type: ignore[no-untyped-def]
    base = scenario(devices=devices, **kw)
    return replace(base, fleet=replace(base.fleet, ramp=ramp))


def test_first_operations_wait_for_their_device() -> None:
    # One arrival a second from 0; devices online at 1, 2, 3, 4 s: the arrival at 0 finds nobody online.
    sc = ramped(4, (DeviceStage(duration=4.0, devices=4),), time_scale=1.0, duration=6.0)
    plan = build_plan(sc, fixed_schedule)
    assert plan.online_us == (1_000_000, 2_000_000, 3_000_000, 4_000_000)
    assert plan.dropped >= 1
    firsts = {}
    for op in plan.operations:
        firsts.setdefault(op.device, op.start_us)
    assert firsts == {0: 1_000_000, 1: 2_000_000, 2: 3_000_000, 3: 4_000_000}


def test_no_operation_before_a_device_is_online() -> None:
    sc = ramped(20, TWO_STAGES, duration=12.0, arrival=ArrivalSpec(model="constant", rate=8.0))
    plan = build_plan(sc)
    assert plan.online_us == online_offsets_us(TWO_STAGES, 20)
    assert plan.operations
    for op in plan.operations:
        assert op.start_us >= plan.online_us[op.device]
    for device in range(20):
        for action in plan.actions_for(device):
            assert action.offset_us >= plan.online_us[device]


def test_devices_the_ramp_never_reaches_get_nothing() -> None:
    sc = ramped(8, (DeviceStage(duration=2.0, devices=5),), arrival=ArrivalSpec(model="constant", rate=4.0))
    plan = build_plan(sc)
    assert plan.online_us[5:] == (NEVER_ONLINE,) * 3
    assert {op.device for op in plan.operations} <= set(range(5))
    assert all(not plan.actions_for(d) for d in range(5, 8))


def test_ramped_plan_is_deterministic_and_worker_count_free() -> None:
    sc = ramped(20, TWO_STAGES, duration=12.0, arrival=ArrivalSpec(model="poisson", rate=5.0))
    one, two = build_plan(sc), build_plan(sc)
    assert one.operations == two.operations and one.online_us == two.online_us
    whole = {d: one.actions_for(d) for d in range(20)}
    for workers in (1, 2, 3, 7):
        union = {d: one.actions_for(d) for w in range(workers) for d in one.partition(w, workers)}
        assert union == whole


def test_without_a_ramp_devices_start_idle_in_index_order() -> None:
    sc = scenario(devices=5)
    plan = build_plan(sc, fixed_schedule)
    assert plan.online_us == (0,) * 5
    assert [op.device for op in plan.operations][:5] == [0, 1, 2, 3, 4]
    assert np.all(np.diff([op.start_us for op in plan.operations]) > 0)
