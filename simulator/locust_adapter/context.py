"""Per-process fleetsim state inside Locust: the run's spec, its bounded plan, this process's devices, the recorder.

`install(environment, spec)` wires everything onto `environment.events`; the user class (users.py) and the
stats bridge (stats_bridge.py) read `environment.fleetsim` (a `FleetContext`). A worker starts without a spec
and receives the master's (`fleetsim_setup`, hooks.py) before Locust's spawn message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from simulator.clock import MonotonicClock
from simulator.generator.finish import spool_dir
from simulator.generator.fleet import FleetCallbacks, ProcessFleet
from simulator.generator.health_monitor import HealthMonitor
from simulator.metrics.campaign import OperationRecord
from simulator.metrics.operation_spool import OperationSpool
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.observers.forwarded import ForwardedArrivals
from simulator.run.live_books import LiveBooks
from simulator.run.plans import BoundedPlan
from simulator.run.spec import RunSpec

__all__ = ["FleetContext", "context_of"]

log = logging.getLogger("fleetsim.locust")


@dataclass
class FleetContext:
    environment: Any
    spec: RunSpec | None  # None on a worker until the master's fleetsim_setup arrives
    clock: MonotonicClock = field(default_factory=MonotonicClock)
    bounded: BoundedPlan | None = None
    fleet: ProcessFleet | None = None
    recorder: MetricsRecorder | None = None
    worker_index: int = 0
    worker_count: int = 1
    extra_greenlets: list[Any] = field(default_factory=list)  # devices driven by the fleet, not a user
    finals: dict[int, dict[str, Any]] = field(default_factory=dict)  # master: worker index -> final export
    # Master: the Locust client ids of the workers whose fleetsim handlers are registered (`fleetsim_ready`,
    # hooks.py): only those can take `fleetsim_setup`, which a worker drops if it comes first.
    ready_workers: set[str] = field(default_factory=set)
    worker_snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # master: live per worker
    monitor: HealthMonitor | None = None
    # Plain locust: -u/-r/-t as given on the command line (None: not given), read by the shape (shape.py).
    given: dict[str, Any] = field(default_factory=dict)
    # Issue 17: a TelemetryHub (local/master with --metrics-port or --otlp) or a ProcessProbe (a worker asked by
    # its master to report); None when live telemetry is off. See locust_adapter/telemetry_hook.py.
    telemetry: Any = None
    # Issue 14: execute's books (send log streamed to disk, arrivals joined live), attached to the recorder of
    # a local runner; None: the recorder keeps its send log (workers ship it; plain Locust).
    live: LiveBooks | None = None
    # Issue 14, master: what workers ship with each periodic report, merged as it comes so that their final
    # messages stay bounded: per worker (Locust client id) the recorder's and the join's sealed seconds.
    # books_of and joined_books take them.
    intervals: dict[str, SecondsInbox] = field(default_factory=dict)
    join_intervals: dict[str, SecondsInbox] = field(default_factory=dict)
    # Issue 14, the process writing the results (master, or local runner): closed OTA operations, folded by
    # (device, uuid), on disk in the run's spool and tallied as they come (ensure_operations).
    operations: OperationSpool | None = None
    # Issue 14, trigger observers: a worker's inbox of the arrivals its master forwards (hooks._forwarded), and
    # when it stopped its devices (its books close at that time, once the master's last arrivals are in); the
    # master's: what each worker said its broker acked, by worker index (the forwarder's final read).
    forwarded: ForwardedArrivals | None = None
    stopped_at: float | None = None
    acked: dict[int, int] = field(default_factory=dict)

    @property
    def is_master(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    def require_spec(self) -> RunSpec:
        if self.spec is None:
            raise RuntimeError("this worker has not received the run's spec from the master (fleetsim_setup)")
        return self.spec

    def ensure_bounded(self) -> BoundedPlan:
        """The run's bounded plan, built from the spec's recipe once per process."""
        if self.bounded is None:
            self.bounded = self.require_spec().bounded_plan()
        return self.bounded

    def ensure_recorder(self) -> MetricsRecorder:
        if self.recorder is None:
            self.recorder = MetricsRecorder(self.clock)
            if not self.is_master and not self.is_worker:
                # This process writes the results: its sealed seconds go to disk once old (issue 14); a
                # worker ships them with its reports instead, and the master's recorder is built at the end.
                self.recorder.spool_seconds()
                if self.live is not None:
                    self.live.attach(self.recorder)
        return self.recorder

    def ensure_operations(self) -> OperationSpool:
        """The spool of answered OTA operations (created on first use, in the results root's spool)."""
        if self.operations is None:
            self.operations = OperationSpool(spool_dir(self.require_spec().settings.results_root))
        return self.operations

    def drain_operations(self) -> None:
        """A local runner, each tick: closed operations leave their devices for the spool, as a worker's leave
        with its periodic reports (hooks._report)."""
        if self.fleet is not None:
            self.ensure_operations().add(self.fleet.take_closed_operations())

    def close_operations(self, exports: list[dict[str, Any]]) -> OperationSpool:
        """Every answered operation, at the end: those closed during the run (drained, or shipped by workers
        with their reports) and the rest, from this fleet or the workers' finals, pieces folded by (device,
        uuid) (a retry after the final re-opens an operation on its device)."""
        spool = self.ensure_operations()
        if not exports:
            spool.add(self.fleet.operation_records() if self.fleet is not None else ())
        for export in exports:
            spool.add(OperationRecord.from_json(doc) for doc in export.get("operations", ()))
        return spool.close()

    def ensure_fleet(self, callbacks: FleetCallbacks) -> ProcessFleet:
        """This process's share of the fleet (once per test)."""
        if self.fleet is None:
            spec = self.require_spec()
            assert spec.target is not None, "the spec reaches Locust with its target open"
            plan = self.ensure_bounded().plan
            self.fleet = ProcessFleet(spec.scenario, plan, spec.target, self.clock,
                                      worker_index=self.worker_index, worker_count=self.worker_count,
                                      callbacks=callbacks)
            log.info("worker %d/%d: %d of %d devices", self.worker_index, self.worker_count,
                     len(self.fleet.indexes), len(plan.device_ids))
        return self.fleet


def context_of(environment: Any) -> FleetContext:
    ctx = getattr(environment, "fleetsim", None)
    if not isinstance(ctx, FleetContext):
        raise RuntimeError("fleetsim is not installed on this Locust environment (call install())")
    return ctx
