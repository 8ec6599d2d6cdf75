"""The plain gevent driver of `execute`: the bounded plan played in this process, no Locust.

`play_fleet` is the loop itself (ProcessFleet + drive_device: onboard every device, start the clock, play
until the plan's end, stop); the benchmarks (bench/fleet_runs.py) call it with their own callbacks, and
`GeventDriver` wraps it for `execute` (tests and tools that want a run without Locust's process patching
overhead). The process must be gevent-patched before sockets are made (as `fleetsim` and Locust do).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.pool

from simulator.clock import MonotonicClock
from simulator.generator.fleet import FINISH_LATE_S, FleetCallbacks, ProcessFleet, drive_device
from simulator.generator.health_monitor import HealthMonitor
from simulator.generator.target import TargetInfo
from simulator.metrics.recorder import MetricsRecorder
from simulator.plan import FleetPlan
from simulator.run.execute import DriveOutcome
from simulator.run.live_books import LiveBooks
from simulator.run.plans import BoundedPlan
from simulator.run.recording import recorder_callbacks
from simulator.run.spec import RunSpec
from simulator.scenario.model import Scenario

__all__ = ["GeventDriver", "PlayedFleet", "play_fleet"]

log = logging.getLogger("fleetsim.gevent_driver")
KILL_TIMEOUT_S = 5.0  # seconds for the device drivers to unwind once the fleet stopped
END_CHECK_S = 1.0  # seconds between looks at the run's end (exact once the plan is generated to its end)
ONLINE_WAIT_S = 60.0  # the clock starts anyway (and the run says so in `failed`) when onboarding takes longer


@dataclass(frozen=True)
class PlayedFleet:
    fleet: ProcessFleet  # stopped: its counters and failures are final
    connect_s: float  # wall seconds to bring every device online (or fail it)


def play_fleet(scenario: Scenario, plan: FleetPlan, target: TargetInfo, *, end_s: float | Callable[[], float],
               callbacks: FleetCallbacks, connect_parallel: int = 50, gc_freeze: bool = False,
               during: Callable[[ProcessFleet], None] | None = None) -> PlayedFleet:
    """Onboard every device (`connect_parallel` at once), play `plan` until `end_s` seconds after the run's
    start (ProcessFleet.begin: every device due at offset 0 online) -- longer, bounded and counted, when the
    generator is behind (ProcessFleet.finish_late) -- then stop the fleet. `end_s` may be a function: the
    lazy plan's end is a bound until the plan is generated to its end (BoundedPlan.end_s), so it is asked
    again each second. `during(fleet)` runs in its own greenlet once the clock started."""
    fleet = ProcessFleet(scenario, plan, target, MonotonicClock(), callbacks=callbacks)
    devices = [fleet.create(i) for i in fleet.indexes]
    drivers = [gevent.spawn(drive_device, fleet, d) for d in devices]
    t0 = time.monotonic()
    helper = None
    connect_s = 0.0
    try:
        gevent.pool.Pool(connect_parallel).map(fleet.bring_online, devices)
        connect_s = time.monotonic() - t0
        if gc_freeze:
            gc.collect()
            gc.freeze()  # full GCs over ramp-up garbage set the p99 (README, Benchmarks)
        if not fleet.started.wait(timeout=ONLINE_WAIT_S):
            fleet.begin()
        if during is not None:
            helper = gevent.spawn(during, fleet)
        end_of = end_s if callable(end_s) else (lambda: end_s)
        while (left := fleet.run_start + end_of() - time.monotonic()) > 0:
            gevent.sleep(min(left, END_CHECK_S))  # sleep-ok: the run's own length, on its clock
        fleet.finish_late(FINISH_LATE_S)  # a generator behind its plan finishes what it started (counted)
    finally:
        fleet.stop()
        try:
            gevent.killall(drivers + ([helper] if helper is not None else []), timeout=KILL_TIMEOUT_S)
        except gevent.Timeout:  # a starved process may need longer; the fleet is stopped and its books final
            alive = sum(1 for g in drivers if not g.dead)
            log.warning("%d device drivers still unwinding %.0f s after the fleet stopped", alive, KILL_TIMEOUT_S)
    return PlayedFleet(fleet=fleet, connect_s=connect_s)


@dataclass
class GeventDriver:
    """`execute`'s driver without Locust: one process, every device of the plan (no ramp spawning: devices due
    later are onboarded at once and wait for their online offset in the plan)."""

    connect_parallel: int = 50
    live: LiveBooks | None = None

    def attach_books(self, live: LiveBooks) -> None:
        """execute's books: the send log streamed to disk and arrivals joined while the plan plays."""
        self.live = live

    def drive(self, spec: RunSpec, bounded: BoundedPlan) -> DriveOutcome:
        assert spec.target is not None, "execute opens the target first"
        if spec.scenario.mode != "self":
            from simulator.errors import UsageError

            raise UsageError("the plain gevent driver plays self-driven plans only (mode: campaign needs Locust)")
        clock = MonotonicClock()
        recorder = MetricsRecorder(clock)
        recorder.spool_seconds()  # this process writes the results: old seconds on disk (issue 14)
        monitor = HealthMonitor(clock)
        callbacks = recorder_callbacks(recorder)
        callbacks.on_begin = monitor.start
        if self.live is not None:
            self.live.plan = bounded.plan
            self.live.attach(recorder)
            callbacks.on_run_start = self.live.run_started
        played = play_fleet(spec.scenario, bounded.plan, spec.target, end_s=lambda: bounded.end_s, callbacks=callbacks,
                            connect_parallel=self.connect_parallel)
        fleet = played.fleet
        return DriveOutcome(recorder=recorder, started_at=fleet.run_start_wall, ended_at=time.time(),
                            health=monitor.stop(), fleet_counters=fleet.counters())
