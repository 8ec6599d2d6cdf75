"""The Locust driver of `execute`: Locust as a library, a local runner or a master with N worker processes.

Timeline of a run: spawn users (devices onboard) -> run start = every device due at offset 0 online (the
fleet's `begin`, or the onboarding deadline here) -> the bounded plan plays on its absolute schedule until its
end (duration, graceful stop for operations in flight, drain for acks and arrivals) -> stop users (unacked
publishes become never_acked records) -> worker finals merged -> the books go back to `execute`.
Ctrl-C / SIGTERM stop the run early; results are written and marked partial. With `--web` the web UI stays up
after the results are written, until Ctrl-C (`linger`).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import gevent
import gevent.event
from locust.env import Environment

from simulator.clock import MonotonicClock
from simulator.generator.campaign_driver import CampaignDriver, DriverResult, driver_for
from simulator.generator.finish import SETTLE_S
from simulator.generator.fleet import FINISH_LATE_S, LOOKAHEAD_US
from simulator.generator.observer_loss import ObserverLoss
from simulator.generator.plan_pace import advance_plan, count_rest
from simulator.generator.ramp import default_spawn_rate, ramp_users
from simulator.locust_adapter.arrival_forward import start_forwarder
from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.hooks import install
from simulator.locust_adapter.idle_watch import IdleWatch
from simulator.locust_adapter.live import LiveDelivery, live_rows, live_snapshot, progress_line
from simulator.locust_adapter.master_procs import await_workers, end_worker, master_runner
from simulator.locust_adapter.spawn_warning import spawn_rate_chosen_by_user
from simulator.locust_adapter.telemetry_hook import start_telemetry
from simulator.locust_adapter.users import DeviceUser
from simulator.locust_adapter.web import install_web_tab
from simulator.metrics.books_export import JoinedBooks, merge_books
from simulator.metrics.health import GeneratorHealth
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.plan import online_offsets_us
from simulator.run.execute import DriveOutcome, WorkerPlan
from simulator.run.live_books import LiveBooks
from simulator.run.plans import DRAIN_S, BoundedPlan
from simulator.run.spec import RunSpec
from simulator.scenario.model import Scenario

__all__ = ["LocustDriver", "books_of"]

log = logging.getLogger("fleetsim.run")

RAMP_TICK_S = 0.25  # how often phase 2 raises the user count while a ramp climbs
FINALS_WAIT_S = 60.0
PLAN_NOT_COUNTED = "the plan after the stop was not counted (second Ctrl-C)"


@dataclass
class _Campaign:
    """The run's campaign driver (embedded or Edgehog), polled once per progress tick."""

    driver: CampaignDriver
    targets: int
    finished: bool = False

    def poll(self) -> bool:
        self.finished = self.driver.finished()  # errors read as not finished (a slow backend never ends a run)
        return self.finished

    def final_count(self, result: DriverResult) -> tuple[int, int]:
        final = sum(1 for op in result.operations if op.status in ("Success", "Failure"))
        return final, self.targets


@dataclass
class LocustDriver:
    """Plays a RunSpec's bounded plan through Locust (local runner, or master + `processes` workers)."""

    _interrupted: str = ""
    _faults: Any = None  # simulator.faults.run_faults.RunFaults when the scenario has faults
    _env: Any = None
    _quiet: bool = False
    _web_port: int = 8089
    _live: LiveBooks | None = None
    _signals: int = 0  # Ctrl-C / SIGTERM received: the second one skips counting the rest of the plan

    def _interrupt(self, reason: str) -> None:
        self._signals += 1
        if not self._interrupted:
            self._interrupted = reason

    def _print(self, line: str) -> None:
        if not self._quiet:
            print(line, file=sys.stderr, flush=True)

    def attach_books(self, live: LiveBooks) -> None:
        """execute's books: a local run streams its send log to disk and joins arrivals while it plays."""
        self._live = live

    def drive(self, spec: RunSpec, bounded: BoundedPlan) -> DriveOutcome:
        # Parts of Locust (its web UI) parse sys.argv themselves; fleetsim's own flags (e.g. --web, a prefix of
        # Locust's --web-host) would make that parse fail. Locust is a library here: it gets no command line.
        self._quiet, self._web_port = spec.settings.quiet, spec.settings.web_port
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            return self._run(spec, bounded)
        finally:
            sys.argv = argv

    def linger(self) -> None:
        """With --web: keep the web UI up (final numbers) until Ctrl-C or SIGTERM, then stop it."""
        env, self._env = self._env, None
        if env is None or env.web_ui is None:
            return
        done = gevent.event.Event()
        handlers = [gevent.signal_handler(sig, done.set) for sig in (signal.SIGINT, signal.SIGTERM)]
        argv, sys.argv = sys.argv, sys.argv[:1]  # the web UI parses sys.argv on requests (see drive)
        print(f"fleetsim: the run is over; the Locust web UI is still up on http://127.0.0.1:{self._web_port}/ "
              "(Ctrl-C to quit)", file=sys.stderr, flush=True)
        try:
            done.wait()
        finally:
            sys.argv = argv
            for handler in handlers:
                handler.cancel()
            env.web_ui.stop()

    def _run(self, spec: RunSpec, bounded: BoundedPlan) -> DriveOutcome:
        spec = self._prepare_faults(spec, bounded)
        if not spec.scenario.answers_requests:  # the arrival draws (hooks._primed_plan), before any worker is up
            bounded.plan.cursor.advance(-1)
        settings = spec.settings
        env = Environment(user_classes=[DeviceUser])
        workers: list[subprocess.Popen[bytes]] = []
        assert spec.target is not None
        delivery = LiveDelivery(spec.target.control_url)
        worker_count = 0
        if settings.processes > 1 or settings.external_workers:
            runner = master_runner(env, settings.master_bind, settings.master_port)
            ctx = install(env, spec)
            # Before the workers: a metrics port in use is refused (exit 2) with nothing to clean up.
            telemetry = start_telemetry(ctx, settings.telemetry, delivery)
            try:
                if settings.external_workers:
                    self._print(f"fleetsim: master listening on {settings.master_bind}:{runner.server.port}; "
                                f"waiting up to {settings.worker_wait_s:g} s for {settings.processes} worker(s) "
                                f"(fleetsim worker --master HOST:{runner.server.port})")
                else:
                    workers = self._spawn_workers(runner, settings.processes, settings.master_bind)
                await_workers(runner, settings.processes, workers, settings.worker_wait_s, ctx.ready_workers)
                worker_count = settings.processes
            except BaseException:
                if telemetry is not None:
                    telemetry.stop()
                for proc in workers:
                    end_worker(proc)
                raise
        else:
            env.create_local_runner()
            ctx = install(env, spec)
            ctx.live = self._live
            if self._live is not None and spec.scenario.mode == "self":
                self._live.plan = bounded.plan
            telemetry = start_telemetry(ctx, settings.telemetry, delivery)
        ctx.bounded = bounded
        delivery.start()
        if settings.web:
            env.create_web_ui("127.0.0.1", settings.web_port)
            install_web_tab(env, lambda: live_rows(ctx, delivery))
            self._print(f"fleetsim: Locust web UI on http://127.0.0.1:{settings.web_port}/")
        old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        handlers = [gevent.signal_handler(sig, self._interrupt, name) for sig, name in
                    ((signal.SIGINT, "interrupted (Ctrl-C)"), (signal.SIGTERM, "terminated (SIGTERM)"))]
        kept = False
        try:
            outcome = self._play(spec, bounded, ctx, delivery, worker_count)
            kept = settings.web and not outcome.partial  # an interrupted run does not wait for a second Ctrl-C
            if kept:
                self._env = env
            return outcome
        finally:
            for handler in handlers:
                handler.cancel()
            for sig, handler in old.items():
                signal.signal(sig, handler)
            delivery.stop()
            if telemetry is not None:
                telemetry.stop()
            if env.web_ui is not None and not kept:
                env.web_ui.stop()  # type: ignore[no-untyped-call]
            for proc in workers:
                end_worker(proc)
            if self._faults is not None:
                self._faults.close()

    def _prepare_faults(self, spec: RunSpec, bounded: BoundedPlan) -> RunSpec:
        """Schedule the scenario's faults; start the fault proxy and route devices through it."""
        if not spec.scenario.faults or spec.target is None:
            return spec
        from simulator.faults.run_faults import RunFaults

        self._faults = RunFaults.prepare(spec.scenario, spec.target, bounded.plan.device_ids)
        if self._faults is not None and self._faults.proxy is not None and spec.settings.external_workers:
            self._faults.close()
            self._faults = None
            from simulator.errors import UsageError

            raise UsageError("network faults (network_delay, stall, reset) route devices through a proxy on the "
                             "master's loopback, which workers on other hosts cannot reach: use --processes")
        return replace(spec, target=self._faults.target) if self._faults is not None else spec

    def _spawn_workers(self, runner: Any, count: int, bind: str) -> list[subprocess.Popen[bytes]]:
        """Worker processes on this host that connect to this master; the spec reaches them in
        `fleetsim_setup`."""
        host = "127.0.0.1" if bind in ("", "0.0.0.0", "*") else "::1" if bind == "::" else bind
        address = f"[{host}]:{runner.server.port}" if ":" in host else f"{host}:{runner.server.port}"
        # Sessions of their own: a terminal's Ctrl-C reaches the whole foreground group, and a worker that got it
        # died of KeyboardInterrupt before its final (the run's books lost: "0 of 2 workers sent final
        # metrics"). The master alone takes the Ctrl-C and stops them through Locust; a worker whose master is
        # gone quits on its own (Locust: no master heartbeat for 60 s).
        return [subprocess.Popen([sys.executable, "-m", "simulator.locust_adapter.worker", address],
                                 start_new_session=True) for _ in range(count)]

    def _announce(self, spec: RunSpec, bounded: BoundedPlan) -> None:
        sc = spec.scenario
        if sc.mode == "campaign":
            self._print(f"fleetsim: the run lasts {sc.duration:.0f} s, or less if the campaign finishes first "
                        f"(+ up to {sc.graceful_stop:.0f} s graceful stop while it still runs)")
            return
        if sc.answers_requests:
            idle = spec.settings.until_idle_s
            self._print(f"fleetsim: devices answer OTARequests for {sc.duration:.0f} s"
                        + (f", or until none was in flight for {idle:g} s" if idle > 0 else ""))
            return
        if bounded.known_cut() is None:  # the plan is generated as the run reaches it: its exact end comes later
            self._print(f"fleetsim: the plan plays {sc.duration:.0f} s and ends by {bounded.end_bound_s:.1f} s "
                        f"(duration + {sc.graceful_stop:.0f} s graceful stop + {DRAIN_S:.0f} s drain; exact once "
                        "the plan's last operation is generated)")
            return
        self._announce_end(sc, bounded)

    def _announce_end(self, sc: Scenario, bounded: BoundedPlan) -> None:
        """The plan's exact end and what the bounds cut: known once the plan is generated to its end."""
        cut = bounded.known_cut()
        assert cut is not None
        line = f"fleetsim: the plan plays {sc.duration:.0f} s and ends at {bounded.end_s:.1f} s"
        if cut.in_flight_at_duration:
            line += (f"; {cut.in_flight_at_duration} operation(s) still running at {sc.duration:.0f} s get up to "
                     f"{sc.graceful_stop:.0f} s graceful stop")
        if cut.cut_operations:
            line += (f"; {cut.cut_operations} operation(s) ({cut.cut_events} events) cut at {sc.duration:.0f} s "
                     f"(they would outlive the graceful stop, {sc.duration + sc.graceful_stop:.0f} s)")
        self._print(line)

    def _play(self, spec: RunSpec, bounded: BoundedPlan, ctx: FleetContext, delivery: LiveDelivery,
              workers: int) -> DriveOutcome:
        scenario = spec.scenario
        runner = ctx.environment.runner
        devices = scenario.fleet.devices
        ramp = scenario.fleet.ramp
        rate = spec.settings.spawn_rate or default_spawn_rate(scenario.fleet)
        spawn_rate_chosen_by_user(bool(spec.settings.spawn_rate))  # Locust's ">100" warning: the user's rate only
        # With a ramp only the devices online at offset 0 onboard before the run's clock starts (all of them
        # without one); the rest come online in phase 2 as the ramp climbs (one tick ahead, as the shape does).
        initial = sum(1 for t in online_offsets_us(ramp, devices) if t == 0)
        users = max(1, initial, ramp_users(scenario.fleet, 0.0)) if ramp else devices
        t0 = time.monotonic()
        self._announce(spec, bounded)
        runner.start(users, spawn_rate=rate)
        # Phase 1: onboarding. The run's clock starts when this process's (or every worker's) devices are online.
        online_deadline = t0 + 60.0 + max(initial, 1) / rate * 3
        while not self._interrupted:
            snap = live_snapshot(ctx)
            if snap["devices_online"] + int(snap.get("devices_failed") or 0) >= initial:
                break
            if ctx.fleet is not None and ctx.fleet.started.is_set():
                break
            if time.monotonic() > online_deadline:
                self._print(f"fleetsim: only {snap['devices_online']}/{devices} devices online; starting anyway")
                if ctx.fleet is not None:
                    ctx.fleet.begin()
                break
            self._print(progress_line(snap, delivery, devices, time.monotonic() - t0, None))
            gevent.sleep(1.0)
        _all_failed(ctx, runner)  # e.g. Pairing API unreachable, wrong realm -> one line, exit 2
        started_at = time.time()
        if ctx.fleet is not None and ctx.fleet.started.is_set():
            started_at = ctx.fleet.run_start_wall
        campaign = self._start_campaign(spec, bounded)
        forwarder = start_forwarder(self._live.observer if self._live is not None else None,
                                    spec.settings.forward_arrivals, bounded.plan.device_ids, runner, workers)
        end_s = scenario.duration if scenario.answers_requests else bounded.end_s  # backend-driven: no plan to play
        end_reason = ""
        if self._faults is not None:  # the fault schedule plays on the run's clock
            fleet = ctx.fleet
            run_start = (fleet.run_start if fleet is not None and fleet.started.is_set()
                         else time.monotonic() - (time.time() - started_at))
            self._faults.start(fleet.devices if fleet is not None else {}, run_start, started_at,
                               local=not workers)
        # Phase 2: play the plan (self-driven), or follow the campaign until it finishes (backend-driven).
        printed_s = -1.0
        end_known = False
        until_idle = spec.settings.until_idle_s
        idle = IdleWatch(until_idle) if scenario.answers_requests and until_idle > 0 else None
        while not self._interrupted:
            elapsed = time.time() - started_at
            if campaign is not None and not campaign.finished:
                if campaign.poll():
                    final, targets = campaign.final_count(campaign.driver.result())
                    end_reason = (f"campaign finished: {final}/{targets} operations final "
                                  f"(at {elapsed:.1f} s of {scenario.duration:.0f} s)")
                    self._print(f"fleetsim: {end_reason}; ending the run after a {DRAIN_S:.0f} s drain")
                    end_s = min(end_s, elapsed + DRAIN_S)
                elif elapsed >= end_s == scenario.duration:  # still running at duration: bounded graceful stop
                    end_s = scenario.duration + scenario.graceful_stop
                    self._print(f"fleetsim: campaign still running at {scenario.duration:.0f} s; up to "
                                f"{scenario.graceful_stop:.0f} s graceful stop")
            if not scenario.answers_requests and not end_known:
                if workers:  # a master: its cursor keeps no actions, only the totals and the digest
                    # In slices: after a stall of this loop the catch-up held it >= 1 s (issue 14).
                    advance_plan(bounded.plan.cursor, round(elapsed * 1e6) + LOOKAHEAD_US)
                end_s = bounded.end_s  # exact once the plan is generated to its end
                if bounded.known_cut() is not None:
                    end_known = True
                    self._announce_end(scenario, bounded)
            if elapsed >= end_s:
                break
            if idle is not None and idle.expired(live_snapshot(ctx), elapsed):
                end_reason = f"no OTARequest in flight for {idle.idle_s:g} s (--until-idle)"
                _note(f"fleetsim: {end_reason}; ending the run")
                break
            wanted = ramp_users(scenario.fleet, elapsed) if ramp else users
            if wanted > users:  # the ramp climbs: Locust spawns the new users (devices) at `rate`
                users = wanted
                runner.start(users, spawn_rate=rate)
            if elapsed >= printed_s + 1.0 or not ramp:  # a ramp ticks 4x a second; progress stays 1 line/s
                printed_s = elapsed
                self._print(progress_line(live_snapshot(ctx), delivery, devices, elapsed, end_s))
            if scenario.answers_requests and not workers:
                ctx.drain_operations()
            gevent.sleep(min(RAMP_TICK_S if ramp else 1.0, max(0.05, end_s - elapsed)))
        fleet = ctx.fleet
        if not self._interrupted and campaign is None and fleet is not None and not workers and fleet.behind():
            # A generator behind its plan finishes what it started (bounded, counted as fleet.overrun_ms)
            # rather than cutting devices mid-operation (ProcessFleet.finish_late).
            self._print(f"fleetsim: {fleet.behind()} devices behind the plan at its end; up to "
                        f"{FINISH_LATE_S:.0f} s to finish what they started")
            fleet.finish_late(FINISH_LATE_S, cancelled=lambda: bool(self._interrupted))
        partial = bool(self._interrupted)
        ended_at = time.time()
        cut_open = 0
        result = campaign.driver.result() if campaign is not None else None
        if campaign is not None and result is not None and not campaign.finished and not partial:
            final, targets = campaign.final_count(result)
            cut_open = targets - final
            end_reason = (f"campaign not finished at duration + graceful_stop: {final}/{targets} operations "
                          f"final, {cut_open} cut")
        faults_log = self._faults.finish() if self._faults is not None else None
        # Phase 3: stop users (devices disconnect; unacked publishes are recorded), collect worker finals.
        runner.stop()
        if forwarder is not None:  # the workers' books close once their last arrivals are forwarded
            forwarder.finish_after_stop(ctx.acked, workers, FINALS_WAIT_S, SETTLE_S)
        exports: list[dict[str, Any]] = []
        if workers:
            deadline = time.monotonic() + FINALS_WAIT_S
            while len(ctx.finals) < workers and time.monotonic() < deadline:
                gevent.sleep(0.05)
            exports = [ctx.finals[i] for i in sorted(ctx.finals)]
            if len(exports) < workers:
                partial = True
                self._print(f"fleetsim: only {len(exports)} of {workers} workers sent final metrics")
        runner.quit()
        uncounted = "" if scenario.answers_requests else self._count_rest(spec, bounded)
        recorder, health, counters, plans = books_of(ctx, exports, started_at)
        joined = joined_books(exports, recorder.start, ended_at, ctx.join_intervals.values())
        reason = self._interrupted
        # A worker whose observer failed at its end joined what it had read: its books lack the rest (ObserverLoss).
        lost = {f"a worker's {e['observer_lost']}" for e in exports if e.get("observer_lost")}
        if forwarder is not None and forwarder.error:  # the master's own read, for its workers
            lost.add(ObserverLoss(forwarder.observer.name, forwarder.error, forwarder.read_at).note())
        for note in sorted(lost):
            partial, reason = True, "; ".join(r for r in (reason, note) if r)
        cursor = bounded.plan.cursor
        # A worker that generated its whole plan is checked against the master's whole plan: not possible when
        # the master's count was stopped (second Ctrl-C); its digest is then left unchecked, not called foreign.
        strangers = [w.index for w in plans if (cursor.done or not w.plan_whole)
                     and not cursor.digest_agrees(w.plan_steps, w.plan_digest, w.plan_whole)]
        if strangers:  # a worker that played another plan makes the accounting meaningless: say so
            partial = True
            reason = f"worker(s) {strangers} played another plan than the master's ({bounded.digest})"
            self._print(f"fleetsim: {reason}")
        return DriveOutcome(
            recorder=recorder, started_at=started_at, ended_at=ended_at, partial=partial, reason=reason,
            end_reason=end_reason, health=health, fleet_counters=counters,
            campaign=dict(result.summary) if result is not None else None, campaign_result=result,
            operations=ctx.close_operations(exports) if scenario.answers_requests else None,
            cut_open=cut_open, faults=faults_log, workers=plans, joined=joined,
            arrivals_forwarded_unjoined=forwarder is not None and joined is None, plan_uncounted=uncounted,
            interrupted=bool(self._interrupted), observer_lost="; ".join(sorted(lost)))

    def _count_rest(self, spec: RunSpec, bounded: BoundedPlan) -> str:
        """The plan generated to its end for its totals (the summary's not_attempted, cut and digest count the
        operations an early stop left unplayed), in slices: the loop (web UI) goes on. The devices are stopped:
        the rest is counted, no action of it is kept. A second Ctrl-C (k6's hard stop) ends the count: returns
        why the plan was not counted ("" when it was)."""
        cursor = bounded.plan.cursor
        cursor.stop_keeping()
        if cursor.done:
            return ""
        if self._signals < 2:
            _note("fleetsim: counting the rest of the plan (not played: not_attempted, cut); Ctrl-C again to "
                  "skip it")
            if count_rest(cursor, stop=lambda: self._signals >= 2, report=lambda line: _note(f"fleetsim: {line}"),
                          plan_s=spec.scenario.duration, clock=time.monotonic):
                return ""
        _note(f"fleetsim: {PLAN_NOT_COUNTED}: not_attempted and cut are written as null")
        return PLAN_NOT_COUNTED

    def _start_campaign(self, spec: RunSpec, bounded: BoundedPlan) -> _Campaign | None:
        assert spec.target is not None
        driver = driver_for(spec.scenario, spec.target, note=_note)
        if driver is None:
            if spec.scenario.answers_requests:
                _note("fleetsim: devices answer OTARequests from any sender (no campaign driver on this target)")
            return None
        ids = list(bounded.plan.device_ids)
        campaign_id = driver.start(spec.scenario, ids)
        self._print(f"fleetsim: {driver.name} campaign {campaign_id} started on {len(ids)} devices")
        return _Campaign(driver, targets=len(ids))


def books_of(ctx: FleetContext, exports: list[dict[str, Any]], started_at: float) -> tuple[
        MetricsRecorder, GeneratorHealth | None, dict[str, int], tuple[WorkerPlan, ...]]:
    """The run's recorder, generator health and fleet counters (this process's, or the workers' final exports
    merged), and the plan each worker reported it played."""
    health: GeneratorHealth | None = ctx.monitor.stop() if ctx.monitor is not None else None
    counters: dict[str, int] = dict(ctx.fleet.counters()) if ctx.fleet is not None else {}
    plans = tuple(WorkerPlan(index=int(e.get("worker_index", i)), plan_digest=str(e.get("plan_digest", "")),
                             plan_steps=int(e.get("plan_steps", 0)), plan_whole=bool(e.get("plan_whole", True)),
                             devices=int(e.get("plan_devices", 0)), final_bytes=int(e.get("final_bytes", 0)),
                             final_parts=tuple(sorted(dict(e.get("final_parts", {})).items())))
                  for i, e in enumerate(exports))
    if not exports:
        return ctx.ensure_recorder(), health, counters, plans
    clock = MonotonicClock()
    recorder = MetricsRecorder(clock, start=started_at)
    for inbox in ctx.intervals.values():  # the seconds workers shipped with their periodic reports (issue 14)
        recorder.absorb_seconds(inbox)
    health = GeneratorHealth(clock)
    for export in exports:
        recorder.merge(export)
        if "health" in export:
            health.merge(export["health"])
        for key, value in dict(export.get("fleet_counters", {})).items():
            if isinstance(value, int):
                counters[key] = counters.get(key, 0) + value
    return recorder, health, counters, plans


def _note(line: str) -> None:
    """A line about how the run goes (printed with --quiet too: it is not the progress line)."""
    print(line, file=sys.stderr, flush=True)


def joined_books(exports: list[dict[str, Any]], start: float, ended_at: float,
                 streamed: Iterable[SecondsInbox] = ()) -> JoinedBooks | None:
    """The workers' own joins merged, when every worker joined its partition (else None: the send logs they
    shipped are joined here, as before)."""
    if not exports or not all("books" in e for e in exports):
        return None
    from simulator.generator.finish import GRACE_S

    return merge_books([e["books"] for e in exports], start, ended_at, GRACE_S, streamed)


def _all_failed(ctx: FleetContext, runner: Any) -> None:
    """Raise UsageError (one line, exit 2) when not one device of this process came online: the target is
    unusable (unreachable Pairing API, wrong realm, refused token), and playing the plan would only time out."""
    fleet = ctx.fleet
    if fleet is None or fleet.online or not fleet.indexes or len(fleet.failed) < len(fleet.indexes):
        return
    from simulator.errors import UsageError

    reason = fleet.failed[min(fleet.failed)]
    runner.quit()
    raise UsageError(f"no device came online ({len(fleet.failed)} failed); first: {reason}")
