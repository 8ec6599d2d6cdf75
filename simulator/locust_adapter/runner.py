"""`fleetsim run` drives Locust as a library: local runner, or a master with N worker processes.

Timeline of a run: spawn users (devices onboard) -> run start = every device of a process online (or its
deadline; with `fleet.ramp` only the devices online at offset 0, the others spawn in phase 2 as the ramp
climbs) -> the plan plays on its absolute schedule for max(duration, last planned action) -> drain (acks and
arrivals settle) -> stop users (unacked publishes become never_acked records) -> results.
Ctrl-C / SIGTERM stop the run early; results are written and marked partial.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment

from simulator.generator.campaign_driver import CampaignDriver, DriverResult, driver_for
from simulator.generator.ramp import SPAWN_LEAD_S, default_spawn_rate
from simulator.generator.target import TargetInfo
from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.hooks import install
from simulator.locust_adapter.live import LiveDelivery, live_rows, live_snapshot, progress_line
from simulator.locust_adapter.settings import RunSettings
from simulator.locust_adapter.users import DeviceUser
from simulator.locust_adapter.web import install_web_tab
from simulator.plan import devices_online_at, online_offsets_us
from simulator.private_files import write_private
from simulator.scenario.model import Scenario

__all__ = ["LocustRun", "RunOutcome", "run_with_locust"]

log = logging.getLogger("fleetsim.run")

DRAIN_S = 2.0  # after the last planned action: QoS 2 acks and collector arrivals settle (loopback: < 100 ms)
WORKER_CONNECT_S = 60.0
RAMP_TICK_S = 0.25  # how often phase 2 raises the user count while a ramp climbs
FINALS_WAIT_S = 60.0


@dataclass
class RunOutcome:
    ctx: FleetContext
    started_at: float  # wall time of the run's start (plan offset 0)
    ended_at: float
    partial: bool
    reason: str = ""
    worker_exports: list[dict[str, Any]] = field(default_factory=list)
    campaign: dict[str, Any] | None = None
    campaign_result: DriverResult | None = None  # issue 13: the backend's view (campaign metrics, convergence)
    operation_records: list[Any] = field(default_factory=list)  # metrics.campaign.OperationRecord, all devices
    faults: list[dict[str, Any]] | None = None  # issue 9: the scenario's faults as run (faults.run_faults)


@dataclass
class LocustRun:
    scenario: Scenario
    scenario_path: str
    overrides: dict[str, object]
    target: TargetInfo
    results_root: Path
    processes: int = 1
    spawn_rate: float = 0.0
    web: bool = False
    web_port: int = 8089
    quiet: bool = False
    until_idle_s: float = 0.0  # backend-driven: end once no request was in flight for this long (0: off)
    _interrupted: str = ""
    _faults: Any = None  # simulator.faults.run_faults.RunFaults when the scenario has faults

    def _interrupt(self, reason: str) -> None:
        self._interrupted = reason

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def run(self) -> RunOutcome:
        # Parts of Locust (its web UI) parse sys.argv themselves; fleetsim's own flags (e.g. --web, a prefix of
        # Locust's --web-host) would make that parse fail. Locust is a library here: it gets no command line.
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            return self._run()
        finally:
            sys.argv = argv

    def _run(self) -> RunOutcome:
        devices = self.scenario.fleet.devices
        fault_plan = self._prepare_faults()
        settings = RunSettings(scenario=self.scenario, target=self.target, results_root=self.results_root,
                               worker_count=self.processes, write_results=False, progress=True)
        env = Environment(user_classes=[DeviceUser])
        workers: list[subprocess.Popen[bytes]] = []
        tmp = tempfile.TemporaryDirectory(prefix="fleetsim-run-")
        if self.processes > 1:
            runner = env.create_master_runner("127.0.0.1", 0)
            ctx = install(env, settings)
            workers = self._spawn_workers(runner, Path(tmp.name))
        else:
            env.create_local_runner()
            ctx = install(env, settings)
        ctx.plan = ctx.plan or fault_plan
        delivery = LiveDelivery(self.target.control_url)
        delivery.start()
        if self.web:
            env.create_web_ui("127.0.0.1", self.web_port)
            install_web_tab(env, lambda: live_rows(ctx, delivery))
            self._print(f"fleetsim: Locust web UI on http://127.0.0.1:{self.web_port}/")
        old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        handlers = [gevent.signal_handler(sig, self._interrupt, name) for sig, name in
                    ((signal.SIGINT, "interrupted (Ctrl-C)"), (signal.SIGTERM, "terminated (SIGTERM)"))]
        try:
            return self._drive(env, ctx, delivery, devices, workers)
        finally:
            for handler in handlers:
                handler.cancel()
            for sig, handler in old.items():
                signal.signal(sig, handler)
            delivery.stop()
            if env.web_ui is not None:
                env.web_ui.stop()  # type: ignore[no-untyped-call]
            for proc in workers:
                _end(proc)
            tmp.cleanup()
            if self._faults is not None:
                self._faults.close()

    def _prepare_faults(self) -> Any:
        """Issue 9: schedule the scenario's faults; start the fault proxy and route devices through it."""
        if not self.scenario.faults:
            return None
        from simulator.faults.run_faults import RunFaults
        from simulator.plan import build_plan

        plan = build_plan(self.scenario)
        self._faults = RunFaults.prepare(self.scenario, self.target, plan.device_ids)
        if self._faults is not None:
            self.target = self._faults.target
        return plan

    def _spawn_workers(self, runner: Any, tmp: Path) -> list[subprocess.Popen[bytes]]:
        settings_file = tmp / "worker-settings.json"
        write_private(settings_file, json.dumps({  # holds the agent JWT
            "scenario": self.scenario_path, "overrides": self.overrides, "target": self.target.to_json(),
            "results_root": str(self.results_root), "worker_count": self.processes}).encode())
        port = runner.server.port
        procs = [subprocess.Popen([sys.executable, "-m", "simulator.locust_adapter.worker", str(settings_file),
                                   str(port)]) for _ in range(self.processes)]
        deadline = time.monotonic() + WORKER_CONNECT_S
        while runner.worker_count < self.processes:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                for proc in procs:
                    _end(proc)
                from simulator.errors import FleetsimError

                raise FleetsimError(f"only {runner.worker_count} of {self.processes} workers connected")
            gevent.sleep(0.05)
        return procs

    def _drive(self, env: Any, ctx: FleetContext, delivery: LiveDelivery, devices: int,
               workers: list[subprocess.Popen[bytes]]) -> RunOutcome:
        runner = env.runner
        ramp = self.scenario.fleet.ramp
        rate = self.spawn_rate or default_spawn_rate(self.scenario.fleet)
        # With a ramp only the devices online at offset 0 onboard before the run's clock starts (all of them
        # without one); the rest come online in phase 2 as the ramp climbs (one tick ahead, as the shape does).
        initial = sum(1 for t in online_offsets_us(ramp, devices) if t == 0)
        users = max(1, initial, devices_online_at(ramp, SPAWN_LEAD_S, devices)) if ramp else devices
        t0 = time.monotonic()
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
        _all_failed(ctx, runner)  # issue 9: e.g. Pairing API unreachable, wrong realm -> one line, exit 2
        started_at = time.time()
        if ctx.fleet is not None and ctx.fleet.started.is_set():
            started_at = ctx.fleet.run_start_wall
        plan = ctx.plan
        last_offset_s = 0.0
        if plan is not None:
            last_offset_s = plan.last_action_s
        elif self.scenario.mode == "self":
            from simulator.plan import build_plan

            ctx.plan = build_plan(self.scenario)
            last_offset_s = ctx.plan.last_action_s
        play_s = max(self.scenario.duration, last_offset_s) + DRAIN_S
        campaign = self._start_campaign(ctx)
        if self._faults is not None:  # issue 9: the fault schedule plays on the run's clock
            fleet = ctx.fleet
            run_start = (fleet.run_start if fleet is not None and fleet.started.is_set()
                         else time.monotonic() - (time.time() - started_at))
            self._faults.start(fleet.devices if fleet is not None else {}, run_start, started_at,
                               local=not workers)
        # Phase 2: play the plan (self-driven), or follow the campaign until it finishes (backend-driven).
        printed_s = -1.0
        idle = _IdleWatch(self.until_idle_s) if self.scenario.answers_requests and self.until_idle_s > 0 else None
        while not self._interrupted:
            elapsed = time.time() - started_at
            if elapsed >= play_s:
                break
            if campaign is not None and campaign.finished():
                play_s = min(play_s, elapsed + DRAIN_S)
            if idle is not None and idle.expired(live_snapshot(ctx), elapsed):
                _note(f"fleetsim: no OTARequest in flight for {self.until_idle_s:g} s; ending the run")
                break
            wanted = devices_online_at(ramp, elapsed + SPAWN_LEAD_S, devices) if ramp else users
            if wanted > users:  # the ramp climbs: Locust spawns the new users (devices) at `rate`
                users = wanted
                runner.start(users, spawn_rate=rate)
            if elapsed >= printed_s + 1.0 or not ramp:  # a ramp ticks 4x a second; progress stays 1 line/s
                printed_s = elapsed
                self._print(progress_line(live_snapshot(ctx), delivery, devices, elapsed, play_s))
            gevent.sleep(min(RAMP_TICK_S if ramp else 1.0, max(0.05, play_s - elapsed)))
        partial = bool(self._interrupted)
        ended_at = time.time()
        faults_log = self._faults.finish() if self._faults is not None else None
        # Phase 3: stop users (devices disconnect; unacked publishes are recorded), collect worker finals.
        runner.stop()
        exports: list[dict[str, Any]] = []
        if workers:
            deadline = time.monotonic() + FINALS_WAIT_S
            while len(ctx.finals) < len(workers) and time.monotonic() < deadline:
                gevent.sleep(0.05)
            exports = [ctx.finals[i] for i in sorted(ctx.finals)]
            if len(exports) < len(workers):
                partial = True
                self._print(f"fleetsim: only {len(exports)} of {len(workers)} workers sent final metrics")
        runner.quit()
        outcome = RunOutcome(ctx=ctx, started_at=started_at, ended_at=ended_at, partial=partial,
                             reason=self._interrupted, worker_exports=exports, faults=faults_log)
        if campaign is not None:
            outcome.campaign_result = campaign.result()
            outcome.campaign = dict(outcome.campaign_result.summary)
        if self.scenario.answers_requests:
            outcome.operation_records = _operation_records(ctx, exports)
        return outcome

    def _start_campaign(self, ctx: FleetContext) -> CampaignDriver | None:
        driver = driver_for(self.scenario, self.target, note=_note)
        if driver is None:
            if self.scenario.answers_requests:
                _note("fleetsim: devices answer OTARequests from any sender (no campaign driver on this target)")
            return None
        from simulator.plan import build_plan

        plan = ctx.plan or build_plan(self.scenario)
        campaign_id = driver.start(self.scenario, list(plan.device_ids))
        self._print(f"fleetsim: {driver.name} campaign {campaign_id} started on {len(plan.device_ids)} devices")
        return driver


def _note(line: str) -> None:
    """A line about how the run goes (printed with --quiet too: it is not the progress line)."""
    print(line, file=sys.stderr, flush=True)


class _IdleWatch:
    """`--until-idle S`: true once S seconds passed with no request in flight and no new request seen, counted
    from the first OTARequest (a run started before the campaign is waiting for it, not idle)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.since = 0.0
        self.requests = -1

    def expired(self, snap: dict[str, Any], elapsed: float) -> bool:
        if self.idle_s <= 0:
            return False
        requests = int(snap.get("requests") or 0)
        if requests == 0 or int(snap.get("in_flight") or 0) > 0 or requests != self.requests:
            self.since, self.requests = elapsed, requests
        return elapsed - self.since >= self.idle_s


def _operation_records(ctx: FleetContext, exports: list[dict[str, Any]]) -> list[Any]:
    from simulator.metrics.campaign import OperationRecord

    if not exports:
        return ctx.fleet.operation_records() if ctx.fleet is not None else []
    return [OperationRecord.from_json(doc) for export in exports for doc in export.get("operations", ())]


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


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_with_locust(run: LocustRun) -> RunOutcome:
    return run.run()
