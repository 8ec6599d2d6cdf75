"""The locustfile body (the repository's locustfile.py re-exports it; `locust -f` accepts this module too).

Plain Locust runs get the same books as `fleetsim run`: the fleetsim web tab while running, and results written
(results/<ts>-<scenario>/) by the local or master process when Locust quits, through the same end-of-run tail
(simulator.run.execute.close_books).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from locust import events

from simulator.errors import ConfigErrors, FleetsimError
from simulator.generator.plan_pace import count_rest
from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.hooks import install_from_options
from simulator.locust_adapter.live import LiveDelivery, live_rows
from simulator.locust_adapter.options import add_options
from simulator.locust_adapter.runner import books_of, joined_books
from simulator.locust_adapter.shape import FleetShape
from simulator.locust_adapter.spawn_warning import spawn_rate_chosen_by_user
from simulator.locust_adapter.telemetry_hook import TelemetryRun, start_telemetry
from simulator.locust_adapter.users import DeviceUser
from simulator.locust_adapter.web import install_web_tab
from simulator.observers.base import Observer
from simulator.run.execute import DriveOutcome, close_books, observer_for_target
from simulator.telemetry.options import TelemetryOptions

__all__ = ["DeviceUser", "FleetShape"]

_started: dict[int, float] = {}
_observers: dict[int, Observer | None] = {}


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any, **_: Any) -> None:
    add_options(parser)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _init(environment: Any, **_: Any) -> None:
    try:
        ctx = install_from_options(environment)
    except FleetsimError as exc:
        # One line and exit 2 (bad input), before any user starts: Locust logs an exception raised in an
        # init handler as a traceback and carries on, so every device would then fail with one of its own.
        lines = [str(e) for e in exc.errors] if isinstance(exc, ConfigErrors) else [f"fleetsim: {exc}"]
        print("\n".join(lines), file=sys.stderr)  # as `fleetsim run` prints them (simulator.cli)
        raise SystemExit(exc.exit_code) from None
    if ctx is not None:  # Locust's ">100" spawn-rate warning only when -r was given (spawn_warning)
        spawn_rate_chosen_by_user(ctx.given.get("spawn_rate") is not None)
    if ctx is None or ctx.is_worker or ctx.spec is None or ctx.spec.target is None:
        return
    delivery = LiveDelivery(ctx.spec.target.control_url)
    options = environment.parsed_options
    telemetry = start_telemetry(ctx, TelemetryOptions(
        metrics_listen=str(getattr(options, "fleetsim_metrics_port", "") or ""),
        otlp_endpoint=str(getattr(options, "fleetsim_otlp", "") or "")), delivery)
    delivery.start()
    install_web_tab(environment, lambda: live_rows(ctx, delivery))
    environment.events.test_start.add_listener(lambda **kw: _start(ctx))
    environment.events.quitting.add_listener(lambda **kw: _finish(ctx, delivery, telemetry))


def _start(ctx: FleetContext) -> None:
    """The run begins: its observer starts now and takes the run's fence (simulator.observers.fence), before
    any device publishes an OTAEvent of this run, so that the join at the end sees only this run's arrivals."""
    _started[id(ctx)] = time.time()
    spec = ctx.require_spec()
    assert spec.target is not None
    previous = _observers.pop(id(ctx), None)  # a test restarted from the web UI: a new run, a new fence
    if previous is not None:
        previous.stop()
    observer = observer_for_target(spec.target, spec.scenario)
    if observer is not None:
        try:
            observer.start()
        except FleetsimError as exc:  # the run goes on; its books say delivered/lost unknown, and why
            print(f"fleetsim: observer: {exc}; delivered/lost will be unknown", file=sys.stderr)
            observer = None
    _observers[id(ctx)] = observer


def _finish(ctx: FleetContext, delivery: LiveDelivery, telemetry: TelemetryRun | None) -> None:
    delivery.stop()
    if telemetry is not None:
        telemetry.stop()
    if id(ctx) not in _started:
        return
    spec = ctx.require_spec()
    assert spec.target is not None
    fleet = ctx.fleet
    started = fleet.run_start_wall if fleet is not None and fleet.started.is_set() else _started[id(ctx)]
    exports = [ctx.finals[i] for i in sorted(ctx.finals)]
    recorder, health, counters, workers = books_of(ctx, exports, started)
    ended = time.time()
    outcome = DriveOutcome(recorder=recorder, started_at=started, ended_at=ended, health=health,
                           fleet_counters=counters, workers=workers,
                           joined=joined_books(exports, recorder.start, ended,
                                               ctx.join_intervals.values()),
                           # The answered operations workers shipped (or this process's): the campaign metrics.
                           operations=ctx.close_operations(exports) if spec.scenario.answers_requests else None)
    observer = _observers.pop(id(ctx), None)
    bounded = ctx.ensure_bounded()
    if not spec.scenario.answers_requests:
        # The rest of the plan counted in slices (issue 14): Locust fires `quitting` before it quits its
        # workers, whose heartbeats this loop still answers; close_books then finds the totals ready.
        bounded.plan.cursor.stop_keeping()
        if not bounded.plan.cursor.done:
            print("fleetsim: counting the rest of the plan (not played: not_attempted, cut)", file=sys.stderr)
            count_rest(bounded.plan.cursor, stop=lambda: False, plan_s=spec.scenario.duration, clock=time.monotonic,
                       report=lambda line: print(f"fleetsim: {line}", file=sys.stderr, flush=True))
    try:
        result = close_books(spec, bounded, outcome, observer)
    finally:
        if observer is not None:
            observer.stop()
    from simulator.outputs.terminal import format_summary

    print(format_summary(result.summary, result.status, run_dir=result.run_dir), end="", file=sys.stderr)
    ctx.environment.process_exit_code = result.exit_code  # plain Locust exits by the same rules as fleetsim run
