"""Per-process fleetsim state inside Locust: the settings, the plan, this process's devices, the recorder.

`install(environment, settings)` wires everything onto `environment.events`; the user class (users.py) and the
stats bridge (stats_bridge.py) read `environment.fleetsim` (a `FleetContext`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from simulator.clock import MonotonicClock
from simulator.generator.fleet import FleetCallbacks, ProcessFleet
from simulator.generator.health_monitor import HealthMonitor
from simulator.locust_adapter.settings import RunSettings
from simulator.metrics.recorder import MetricsRecorder
from simulator.plan import FleetPlan, build_plan

__all__ = ["FleetContext", "context_of"]

log = logging.getLogger("fleetsim.locust")


@dataclass
class FleetContext:
    environment: Any
    settings: RunSettings
    clock: MonotonicClock = field(default_factory=MonotonicClock)
    plan: FleetPlan | None = None
    fleet: ProcessFleet | None = None
    recorder: MetricsRecorder | None = None
    worker_index: int = 0
    worker_count: int = 1
    extra_greenlets: list[Any] = field(default_factory=list)  # devices driven by the fleet, not a user
    finals: dict[int, dict[str, Any]] = field(default_factory=dict)  # master: worker index -> final export
    worker_snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # master: live per worker
    generator_flags: dict[str, Any] = field(default_factory=dict)
    monitor: HealthMonitor | None = None
    # Plain locust: -u/-r/-t as given on the command line (None: not given), read by the shape (shape.py).
    given: dict[str, Any] = field(default_factory=dict)
    # Issue 17: a TelemetryHub (local/master with --metrics-port or --otlp) or a ProcessProbe (a worker asked by
    # its master to report); None when live telemetry is off. See locust_adapter/telemetry_hook.py.
    telemetry: Any = None

    @property
    def is_master(self) -> bool:
        return type(self.environment.runner).__name__ == "MasterRunner"

    def ensure_recorder(self) -> MetricsRecorder:
        if self.recorder is None:
            self.recorder = MetricsRecorder(self.clock)
        return self.recorder

    def ensure_fleet(self, callbacks: FleetCallbacks) -> ProcessFleet:
        """Build the plan and this process's share of the fleet (once per test)."""
        if self.fleet is None:
            self.plan = self.plan or build_plan(self.settings.scenario)
            self.fleet = ProcessFleet(self.settings.scenario, self.plan, self.settings.target, self.clock,
                                      worker_index=self.worker_index, worker_count=self.worker_count,
                                      callbacks=callbacks)
            log.info("worker %d/%d: %d of %d devices", self.worker_index, self.worker_count,
                     len(self.fleet.indexes), len(self.plan.device_ids))
        return self.fleet


def context_of(environment: Any) -> FleetContext:
    ctx = getattr(environment, "fleetsim", None)
    if not isinstance(ctx, FleetContext):
        raise RuntimeError("fleetsim is not installed on this Locust environment (call install())")
    return ctx
