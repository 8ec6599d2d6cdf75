"""Wiring fleetsim onto a Locust Environment's events (local, master and worker alike).

Distributed runs: a worker says `fleetsim_ready` once its message handlers are registered, and `fleetsim run`
starts only when every worker has (a worker connects -- Locust's client_ready -- before it can register them, and
Locust drops a message with no handler: a loaded worker then missed the spec and played nothing). At test start
the master sends every worker the run's spec as data and the worker count (`fleetsim_setup`, sent before
Locust's spawn message on the same ordered channel); each worker builds the same
plan from the spec's recipe (scenario + seed, never its own scenario file or environment) as the spec arrives,
in a native thread so that its heartbeats go on, and runs partition(worker_index, worker_count).
Live: each worker's `report_to_master` carries a progress snapshot. Final: at test stop each worker sends its
recorder's aggregates as `fleetsim_final` (HDR-encoded histograms, counters, and — when it joined its own
partition against the embedded collector — its books: accounting, funnel, unmatched keys, never the per-event
logs, which stay on its disk), with the digest of the plan it played; the master merges them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import msgpack  # type: ignore[import-untyped]
from locust.runners import MasterRunner, WorkerRunner

from simulator.errors import FleetsimError
from simulator.generator.fleet import ProcessFleet, drive_device
from simulator.generator.health_monitor import HealthMonitor
from simulator.generator.observer_loss import ObserverLoss
from simulator.locust_adapter.arrival_forward import ACKED_MSG, ARRIVALS_MSG, DONE_MSG
from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.live import add_request_counts
from simulator.locust_adapter.settings import spec_from_options
from simulator.locust_adapter.stats_bridge import make_callbacks
from simulator.locust_adapter.telemetry_hook import install_telemetry
from simulator.metrics.campaign import OperationRecord
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.observers.base import Observer
from simulator.observers.fence import RunFence
from simulator.observers.forwarded import ForwardedArrivals, arrival_from_row
from simulator.run.plans import BoundedPlan
from simulator.run.spec import RunSpec

__all__ = ["READY_MSG", "build_fleet", "install", "install_from_options"]

log = logging.getLogger("fleetsim.locust")

READY_MSG = "fleetsim_ready"  # worker -> master: fleetsim's message handlers are registered


def install(environment: Any, spec: RunSpec | None) -> FleetContext:
    """Attach a FleetContext to `environment` and register fleetsim's listeners (idempotent). A worker passes
    no spec: it receives the master's."""
    existing = getattr(environment, "fleetsim", None)
    if isinstance(existing, FleetContext):
        return existing
    ctx = FleetContext(environment=environment, spec=spec,
                       worker_count=spec.settings.processes if spec is not None else 1)
    environment.fleetsim = ctx
    events = environment.events
    events.test_start.add_listener(lambda **kw: _on_test_start(ctx))
    events.report_to_master.add_listener(lambda client_id, data, **kw: _report(ctx, data))
    events.worker_report.add_listener(lambda client_id, data, **kw: _worker_report(ctx, client_id, data))
    events.spawning_complete.add_listener(lambda user_count=0, **kw: _on_spawned(ctx, user_count))
    events.test_stopping.add_listener(lambda **kw: _on_stopping(ctx))
    events.test_stop.add_listener(lambda **kw: _on_test_stop(ctx))
    if environment.runner is not None:
        _register_messages(ctx)
    else:
        events.init.add_listener(lambda environment, **kw: _register_messages(ctx))
    install_telemetry(ctx)
    return ctx


def install_from_options(environment: Any) -> FleetContext | None:
    """Plain `locust -f locustfile.py`: the spec from the parsed fleetsim options (the composition root of a
    plain Locust run); a worker takes the master's instead of reading its own options."""
    options = environment.parsed_options
    if options is None:
        return None
    if isinstance(environment.runner, WorkerRunner):
        return install(environment, None)
    ctx = install(environment, spec_from_options(options, getattr(options, "num_users", None)))
    # Headless Locust sets num_users/spawn_rate to 1 when they were not given, after `init` and before the
    # shape's first tick (locust/main.py): what the user gave is only known here.
    ctx.given = {"users": getattr(options, "num_users", None), "spawn_rate": getattr(options, "spawn_rate", None),
                 "run_time": getattr(options, "run_time", None)}
    return ctx


def _register_messages(ctx: FleetContext) -> None:
    runner = ctx.environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("fleetsim_setup", lambda msg, **kw: _on_setup(ctx, msg.data))
        runner.register_message(ARRIVALS_MSG, lambda msg, **kw: _on_arrivals(ctx, msg.data))
        runner.register_message(DONE_MSG, lambda msg, **kw: _on_arrivals_done(ctx, msg.data))
        ctx.worker_index = int(getattr(runner, "worker_index", 0))
        runner.send_message(READY_MSG, None)  # every handler above is in place: the master may send the spec
    elif isinstance(runner, MasterRunner):
        runner.register_message(READY_MSG, lambda msg, **kw: ctx.ready_workers.add(str(msg.node_id)))
        runner.register_message("fleetsim_final", lambda msg, **kw: _on_final(ctx, msg.data))
        runner.register_message(ACKED_MSG, lambda msg, **kw: _on_acked(ctx, msg.data))


def _on_setup(ctx: FleetContext, data: dict[str, Any]) -> None:
    """A worker: the run's spec and the worker count, from the master (the only source of either)."""
    spec = RunSpec.from_json(str(data["spec"]))
    ctx.spec = spec
    ctx.worker_count = int(data["worker_count"])
    # Built in a native thread: a large plan takes seconds of CPU (~2 s for 60k events on a quiet core, more on
    # a loaded one), and on the gevent loop it would stop this worker's heartbeat greenlet; Locust's master
    # marks a worker missing after HEARTBEAT_LIVENESS (3) missed 1 s heartbeats and never has it spawn, so
    # nothing would be sent. The thread holds the GIL only between switch intervals (5 ms): heartbeats go on.
    ctx.bounded = gevent.get_hub().threadpool.apply(_primed_plan, (spec,))


def _primed_plan(spec: RunSpec) -> BoundedPlan:
    """The spec's bounded plan with its first step pulled (not generated): the pull draws every arrival of
    the run at once, here in the thread rather than on the loop at the fleet's first feed (a 10 M-event,
    5 M-operation plan under nice 19: the loop held 1.1 s on it, 40 ms at most with the thread)."""
    bounded = spec.bounded_plan()
    if not spec.scenario.answers_requests:  # a backend-driven fleet plays no plan
        bounded.plan.cursor.advance(-1)
    return bounded


def _on_test_start(ctx: FleetContext) -> None:
    runner = ctx.environment.runner
    ctx.ensure_recorder()
    if isinstance(runner, MasterRunner):
        workers = runner.worker_count
        ctx.worker_count = workers
        runner.send_message("fleetsim_setup", {"worker_count": workers, "spec": ctx.require_spec().to_json()})
        return
    if isinstance(runner, WorkerRunner):
        ctx.worker_index = int(runner.worker_index)
    fleet = build_fleet(ctx)
    if isinstance(runner, WorkerRunner):
        _worker_books(ctx, fleet)


def _worker_books(ctx: FleetContext, fleet: ProcessFleet) -> None:
    """A worker joins its own devices' events (issue 14): its send log streams to its spool dir, and its
    arrivals come from the embedded collector, which it pages itself (an HTTP read any number of workers can
    share), or from the master, which forwards it its partition of a trigger observer's arrivals (a queue or
    an endpoint that only the master holds: simulator.observers.forwarded)."""
    spec = ctx.require_spec()
    target = spec.target
    if target is None or ctx.recorder is None:
        return
    from simulator.run.live_books import LiveBooks

    plan = ctx.ensure_bounded().plan
    settings = spec.settings  # the master's fence: earlier runs' arrivals never join, its offset judges pairs
    observer: Observer
    keep: frozenset[str] | None = None
    if spec.settings.forward_arrivals:
        observer = _forwarded(ctx)  # the master sends only this worker's devices' arrivals
    elif target.kind == "embedded" and target.control_url:
        from simulator.observers.embedded import CollectorClient

        client = CollectorClient(target.control_url)
        client.follow(settings.arrival_cursor, settings.arrival_offset_s, settings.arrival_uncertainty_s)
        observer, keep = client, frozenset(plan.device_ids[i] for i in fleet.indexes)
    else:
        return
    live = LiveBooks(observer, spec.settings.results_root, plan=plan if spec.scenario.mode == "self" else None,
                     keep=keep)
    ctx.live = live
    live.attach(ctx.recorder)
    fleet.callbacks.on_run_start = live.run_started


def build_fleet(ctx: FleetContext) -> ProcessFleet:
    """This process's share of the fleet, wired to the stats bridge and the health monitor (once)."""
    callbacks = make_callbacks(ctx.environment, ctx.ensure_recorder())
    callbacks.on_begin = lambda: _start_monitor(ctx)
    if ctx.live is not None:
        callbacks.on_run_start = ctx.live.run_started
    return ctx.ensure_fleet(callbacks)


def _start_monitor(ctx: FleetContext) -> None:
    """Generator health is measured while the plan plays, not during onboarding (TLS handshakes are meant to
    load the generator then, and would otherwise mark every large run saturated)."""
    if ctx.monitor is None:
        ctx.monitor = HealthMonitor(ctx.clock)
        ctx.monitor.start()


def _on_spawned(ctx: FleetContext, user_count: int) -> None:
    """Fewer users than devices on this process: the fleet drives the devices no user claimed.

    With a ramp, spawning completes at every step of it: only its last step (the ramp's final count, over
    every process) leaves the rest to the fleet, or the fleet would bring the whole ramp online at once.
    """
    fleet = ctx.fleet
    if fleet is None or ctx.is_master:
        return
    ramp = ctx.require_spec().scenario.fleet.ramp
    if ramp and user_count < ramp[-1].devices:
        return
    for index in fleet.claim_rest():
        ctx.extra_greenlets.append(gevent.spawn(_drive_unclaimed, fleet, index))


def _drive_unclaimed(fleet: ProcessFleet, index: int) -> None:
    if fleet.stopping.is_set():  # the run ended while this device waited for its turn to onboard
        return
    device = fleet.create(index)
    if fleet.bring_online(device):
        drive_device(fleet, device)


# Keys of a worker's periodic report (Locust's report_to_master, every WORKER_REPORT_INTERVAL = 3 s) that carry
# what its final message would otherwise accumulate over the whole run (issue 14).
SECONDS_KEY = "fleetsim_seconds"
JOIN_SECONDS_KEY = "fleetsim_join_seconds"
OPERATIONS_KEY = "fleetsim_operations"


def _report(ctx: FleetContext, data: dict[str, Any]) -> None:
    if ctx.recorder is not None:
        # A worker's sealed seconds go with each report and leave its memory: its final message carries only
        # the last few (open) seconds, whatever the run's length.
        data[SECONDS_KEY] = ctx.recorder.take_sealed()
        books = ctx.recorder.books
        if books is not None and books.join is not None and not books.join.finished:
            data[JOIN_SECONDS_KEY] = books.join.take_sealed()
        if ctx.fleet is not None:
            data[OPERATIONS_KEY] = [r.to_json() for r in ctx.fleet.take_closed_operations()]
        snap = ctx.recorder.snapshot()
        if ctx.fleet is not None:
            snap["devices_failed"] = len(ctx.fleet.failed)
        add_request_counts(ctx, snap)
        data["fleetsim"] = snap


def _worker_report(ctx: FleetContext, client_id: str, data: dict[str, Any]) -> None:
    for key, inboxes in ((SECONDS_KEY, ctx.intervals), (JOIN_SECONDS_KEY, ctx.join_intervals)):
        shipped = data.get(key)
        if isinstance(shipped, dict) and shipped.get("seconds"):
            inbox = inboxes.get(client_id)
            if inbox is None:
                inbox = inboxes[client_id] = SecondsInbox(float(shipped["start"]))
            inbox.add(shipped)
    operations = data.get(OPERATIONS_KEY)
    if isinstance(operations, list) and operations:
        ctx.ensure_operations().add(OperationRecord.from_json(doc) for doc in operations)
    snap = data.get("fleetsim")
    if isinstance(snap, dict):
        ctx.worker_snapshots[client_id] = snap


def _on_stopping(ctx: FleetContext) -> None:
    if ctx.fleet is not None:
        ctx.fleet.stopping.set()


def _on_test_stop(ctx: FleetContext) -> None:
    runner = ctx.environment.runner
    if ctx.fleet is not None:
        ctx.fleet.stop()
    if isinstance(runner, WorkerRunner) and ctx.recorder is not None:
        ctx.stopped_at = time.time()
        if ctx.forwarded is not None:
            # Arrivals come from the master (observers.forwarded): it reads its observer until it has what this
            # worker's broker acked, then sends DONE_MSG, on which the final goes (_send_final). Waiting here
            # would hold Locust's receiving greenlet, and with it the forwarded arrivals.
            runner.send_message(ACKED_MSG, {"worker_index": ctx.worker_index, "acked": ctx.recorder.totals["acked"]})
            return
        _send_final(ctx, runner)


def _send_final(ctx: FleetContext, runner: Any) -> None:
    """A worker's final message: its recorder's aggregates and, when it joined its partition, its books."""
    if ctx.recorder is None:
        return
    books = ctx.recorder.books
    export = ctx.recorder.final_export(include_send_log=books is None)
    if books is not None and ctx.live is not None:
        from simulator.generator.finish import GRACE_S, SETTLE_S
        from simulator.metrics.books_export import books_export

        end = ctx.stopped_at or time.time()
        pump = ctx.live.pump
        if pump is not None:  # forwarded arrivals are all here already: no settling
            try:
                pump.drain(ctx.recorder.totals["acked"], 0.0 if ctx.forwarded is not None else SETTLE_S)
            except (FleetsimError, OSError, ValueError) as exc:  # the books keep what was read; the master says so
                export["observer_lost"] = ObserverLoss(pump.observer.name, str(exc), pump.read_at).note()
        # The cut of what this worker generated, never the rest of the plan: on an early stop, generating
        # it here (minutes of CPU for a 10 M-event plan) held the greenlet that reads the master's messages
        # and the master marked this worker missing. Every operation it played was generated.
        cut = frozenset(ctx.bounded.cut_so_far().operation_ids) if ctx.bounded is not None else frozenset()
        export["books"] = books_export(books, end, GRACE_S, cut)
        export["ota_events"] = [[status, code, n] for (status, code), n in books.ota_events.items()]
    export["worker_index"] = ctx.worker_index
    if ctx.bounded is not None:  # the master compares it with its own (same spec => same plan)
        # Over the part generated (PlanCursor.digest_mark), the whole plan's once this worker reached its end.
        cursor = ctx.bounded.plan.cursor
        export["plan_steps"], export["plan_digest"] = cursor.digest_mark()
        export["plan_whole"] = cursor.done
        export["plan_devices"] = len(ctx.bounded.plan.device_ids)
    export["fleet_counters"] = ctx.fleet.counters() if ctx.fleet is not None else {}
    # Operations closed before now went with the periodic reports (fleet.take_closed_operations): only the
    # ones still open at the end, or closed since the last report, are left.
    export["operations"] = [r.to_json() for r in ctx.fleet.operation_records()] if ctx.fleet else []
    if ctx.monitor is not None:
        export["health"] = ctx.monitor.stop().export()
    runner.send_message("fleetsim_final", export)


def _forwarded(ctx: FleetContext) -> ForwardedArrivals:
    """This worker's inbox of forwarded arrivals (created by the first of its books or the master's rows)."""
    if ctx.forwarded is None:
        settings = ctx.require_spec().settings  # the master's fence: its offset judges each joined pair
        ctx.forwarded = ForwardedArrivals(RunFence(at=0.0, offset_s=settings.arrival_offset_s,
                                                   uncertainty_s=settings.arrival_uncertainty_s,
                                                   kind="master's trigger mark (forwarded)"))
    return ctx.forwarded


def _on_arrivals(ctx: FleetContext, data: dict[str, Any]) -> None:
    _forwarded(ctx).add(arrival_from_row(cells) for cells in data.get("rows", ()))


def _on_arrivals_done(ctx: FleetContext, data: dict[str, Any]) -> None:
    inbox = _forwarded(ctx)
    inbox.finish()
    log.info("master forwarded %s arrivals (%s of devices outside the plan)", data.get("forwarded"),
             data.get("strangers"))
    _send_final(ctx, ctx.environment.runner)


def _on_acked(ctx: FleetContext, data: dict[str, Any]) -> None:
    ctx.acked[int(data.get("worker_index", len(ctx.acked)))] = int(data.get("acked", 0))


def _on_final(ctx: FleetContext, data: dict[str, Any]) -> None:
    index = int(data.get("worker_index", len(ctx.finals)))
    # The message's size as Locust sent it (msgpack, its wire encoding): issue 14 wants <= 1 MB per worker.
    data["final_bytes"] = len(msgpack.packb(data, use_bin_type=True))
    data["final_parts"] = {str(key): len(msgpack.packb(value, use_bin_type=True)) for key, value in data.items()
                           if key not in ("final_bytes", "final_parts")}
    ctx.finals[index] = data
    log.info("final metrics from worker %d (%d sends)", index, len(data.get("send_log", ())))
