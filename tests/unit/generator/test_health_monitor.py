"""HealthMonitor's probe on an injected clock: it wakes on the clock's multiples of TICK_S (the instants the I/O
loop's idle housekeeping uses too, so one wake-up of the loop serves both), records how late each wake-up came,
and samples the CPU every CPU_EVERY ticks."""

from __future__ import annotations

import pytest

import simulator.generator.health_monitor as hm
from simulator.clock import VirtualClock, grid_delay


class _Stop(Exception):
    pass


def test_probe_wakes_on_the_grid_and_records_its_lateness(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock(start=12.537)
    monitor = hm.HealthMonitor(clock)
    asked: list[float] = []
    late_s = [0.0, 0.004, 0.0, 0.150, 0.0]  # how late each wake-up comes

    def sleep(seconds: float) -> None:
        if len(asked) == len(late_s):
            raise _Stop
        asked.append(seconds)
        clock.advance(seconds + late_s[len(asked) - 1])

    cpu_samples: list[float] = []
    monkeypatch.setattr(hm.gevent, "sleep", sleep)
    monkeypatch.setattr(monitor.health, "sample_cpu", lambda: cpu_samples.append(clock.monotonic()))
    monkeypatch.setattr(hm, "CPU_EVERY", 2)
    with pytest.raises(_Stop):
        monitor._run()
    # 12.537 -> 12.6 (on time), -> 12.7 (+4 ms), -> 12.8, -> 12.9 (+150 ms: 13.05), -> 13.1
    assert asked == pytest.approx([0.063, 0.1, 0.096, 0.1, 0.05])
    assert monitor.health.loop_lag.count == 5
    assert monitor.health.loop_lag.summary_ms()["max"] == pytest.approx(150, rel=0.01)
    assert len(cpu_samples) == 2


def test_grid_delay() -> None:
    assert grid_delay(12.537, 0.1) == pytest.approx(0.063)
    assert grid_delay(10.0, 0.5) == pytest.approx(0.5)  # on a multiple: a whole period
    assert grid_delay(10.49, 0.5) == pytest.approx(0.01)
    # A hair before a multiple (a timer that fired early, float rounding): the next one, not a wake-up at once.
    assert grid_delay(10.4999, 0.5) == pytest.approx(0.5001)
    assert grid_delay(12.6 - 1e-12, 0.1) == pytest.approx(0.1)
    # A period that divides another: the longer one's instants are among the shorter one's.
    assert 7.3125 + grid_delay(7.3125, 0.5) == pytest.approx(7.5)
    assert 7.3125 + grid_delay(7.3125, 0.1) == pytest.approx(7.4)
