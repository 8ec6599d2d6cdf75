"""ProcessFleet with a ramp: the run's clock starts with the devices online at offset 0 (now, when there are
none), devices the ramp never reaches are nobody's, and a device created later counts from that start."""

from __future__ import annotations

from dataclasses import replace

from simulator.clock import VirtualClock
from simulator.generator.fleet import ProcessFleet
from simulator.generator.target import TargetInfo
from simulator.plan import build_plan
from simulator.scenario.model import DeviceStage
from tests.unit.plan.test_fleet_plan import scenario

TARGET = TargetInfo(kind="embedded", realm="fleetsim", pairing_url="", agent_jwt="", ca_file="")


def fleet_for(ramp: tuple[DeviceStage, ...], devices: int = 6, **kw: object) -> ProcessFleet:
    base = scenario(devices=devices)
    sc = replace(base, transport="memory", fleet=replace(base.fleet, ramp=ramp))
    return ProcessFleet(sc, build_plan(sc), TARGET, VirtualClock(start=100.0), **kw)  # type: ignore[arg-type]


def test_ramp_from_zero_starts_the_clock_at_once() -> None:
    fleet = fleet_for((DeviceStage(duration=4.0, devices=4),))
    assert fleet.initial == 0 and fleet.started.is_set() and fleet.run_start == 100.0
    assert fleet.indexes == [0, 1, 2, 3]  # devices 4 and 5: never online, never claimed
    assert fleet.claim_rest() == [0, 1, 2, 3]
    clock = fleet.clock
    assert isinstance(clock, VirtualClock)
    clock.advance(2.5)
    device = fleet.create(1)
    assert device.run_start == 100.0  # offsets count from the run's start, not from its creation
    fleet.stop()


def test_clock_waits_for_the_devices_online_at_zero() -> None:
    fleet = fleet_for((DeviceStage(duration=0.000001, devices=0), DeviceStage(duration=4.0, devices=6)))
    assert fleet.initial == 0  # a stage of 0 devices: still nobody online at offset 0
    fleet.stop()
    without = fleet_for((), worker_index=1, worker_count=2)
    assert without.indexes == [1, 3, 5] and without.initial == 3 and not without.started.is_set()
    for index in without.indexes:
        without.bring_online(without.create(index))
    assert without.started.is_set()
    without.stop()
