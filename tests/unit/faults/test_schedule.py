"""The fault schedule: seeded device choice, exact step times, parameter errors (pure, no clock)."""

from __future__ import annotations

import pytest

from simulator.errors import ConfigErrors
from simulator.faults.schedule import build_schedule
from simulator.scenario.model import FaultSpec, FleetSpec, Scenario


def _scenario(*faults: FaultSpec, devices: int = 100, seed: int = 3, transport: str = "lean") -> Scenario:
    return Scenario(name="f", seed=seed, fleet=FleetSpec(devices=devices), faults=faults,
                    transport=transport, source="f.yaml")  # type: ignore[arg-type]


def test_same_seed_same_devices_other_seed_other_devices() -> None:
    f = FaultSpec("disconnect", at=10, duration=5, devices=0.1)
    a = build_schedule(_scenario(f)).actions[0].devices
    assert a == build_schedule(_scenario(f)).actions[0].devices
    assert len(a) == 10 and len(set(a)) == 10 and all(0 <= d < 100 for d in a)
    assert a != build_schedule(_scenario(f, seed=4)).actions[0].devices


def test_fraction_rounds_up_to_at_least_one_device() -> None:
    s = build_schedule(_scenario(FaultSpec("duplicate", devices=0.001), devices=10))
    assert len(s.actions[0].devices) == 1


def test_steps_are_timed_and_ordered() -> None:
    s = build_schedule(_scenario(FaultSpec("stall", at=5, duration=2, devices=0.5),
                                 FaultSpec("broker_restart", at=1, duration=0.5),
                                 FaultSpec("reset", at=3, devices=0.5)))
    assert [(st.t, st.action.kind, st.phase) for st in s.steps] == [
        (1, "broker_restart", "start"), (1.5, "broker_restart", "end"), (3, "reset", "start"),
        (5, "stall", "start"), (7, "stall", "end")]
    assert s.needs_proxy and len(s.proxied) == 50
    assert s.actions[1].devices == ()  # the broker is the whole backend


def test_network_faults_share_the_proxied_set_of_the_largest_fraction() -> None:
    s = build_schedule(_scenario(FaultSpec("stall", devices=0.2), FaultSpec("network_delay", devices=0.4)))
    assert len(s.proxied) == 40
    assert s.actions[0].devices == s.actions[1].devices == s.proxied


def test_reboot_storm_spreads_devices_over_the_window() -> None:
    s = build_schedule(_scenario(FaultSpec("reboot_storm", at=10, duration=4, devices=0.2,
                                           params=(("reboot", "2s"),))))
    starts = [st for st in s.steps if st.phase == "start"]
    ends = {st.device: st.t for st in s.steps if st.phase == "end"}
    assert len(starts) == 20
    assert all(10 <= st.t <= 14 for st in starts)
    assert all(ends[st.device] == pytest.approx(st.t + 2) for st in starts)
    assert len({st.t for st in starts}) == 20  # not all at once: a storm, not a single instant


def test_params_defaults_and_values() -> None:
    s = build_schedule(_scenario(FaultSpec("network_delay"),
                                 FaultSpec("clock_skew", params=(("offset", "-90s"),)),
                                 FaultSpec("slow_device", params=(("delay_ms", "5"),))))
    assert s.actions[0].param("delay_ms") == 100.0
    assert s.actions[1].param("offset") == -90.0
    assert s.actions[2].param("delay_ms") == 5.0


def test_bad_params_are_one_line_each_naming_file_and_field() -> None:
    with pytest.raises(ConfigErrors) as err:
        build_schedule(_scenario(FaultSpec("network_delay", params=(("delay_ms", "fast"),)),
                                 FaultSpec("duplicate", params=(("copies", "0"),)),
                                 FaultSpec("stall", params=(("bogus", "1"),))))
    lines = str(err.value).splitlines()
    assert lines == [
        "f.yaml: faults[0].params.delay_ms: expected a number, got 'fast'",
        "f.yaml: faults[1].params.copies: must be >= 1, got 0",
        "f.yaml: faults[2].params.bogus: unknown parameter for stall (known: none)",
    ]


def test_network_faults_need_the_lean_transport() -> None:
    with pytest.raises(ConfigErrors, match=r"faults\[0\]\.kind: stall needs the fault proxy"):
        build_schedule(_scenario(FaultSpec("stall"), transport="sdk"))
