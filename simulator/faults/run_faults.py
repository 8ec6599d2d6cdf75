"""A run's faults, end to end: schedule, fault proxy in front of the broker, runner, log for the summary.

Used by the Locust runner (simulator.locust_adapter.runner) in three calls:
  faults = RunFaults.prepare(scenario, target, device_ids)  -> routes proxied devices (returns new target)
  faults.start(devices, run_start, run_start_wall, local)   -> once the run's clock starts
  log = faults.finish(); faults.close()                     -> the summary's "faults" list; proxy stopped
Network faults need the embedded backend (the proxy's upstream is its broker; its certificate names
127.0.0.1, where the proxy listens). broker_restart needs its control endpoint. Device faults run in the
process that holds the devices: the local runner (a master with workers logs them as not run: a known gap).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from simulator.clock import Clock, MonotonicClock
from simulator.errors import UsageError
from simulator.faults.actions import FaultRunner
from simulator.faults.proxy_process import ProxyProcess, ProxyProcessError
from simulator.faults.schedule import DEVICE_KINDS, FaultSchedule, build_schedule, describe
from simulator.scenario.model import Scenario
from simulator.target_info import TargetInfo

__all__ = ["RunFaults"]


class RunFaults:
    def __init__(self, schedule: FaultSchedule, target: TargetInfo, proxy: ProxyProcess | None,
                 clock: Clock | None = None) -> None:
        self.schedule = schedule
        self.target = target
        self.proxy = proxy
        self.clock: Clock = clock or MonotonicClock()
        self.runner: FaultRunner | None = None
        self.local = True

    @classmethod
    def prepare(cls, scenario: Scenario, target: TargetInfo, device_ids: Sequence[str],
                log_dir: Path | None = None) -> RunFaults | None:
        """None when the scenario has no faults. Starts the proxy (and reroutes devices) when needed."""
        if not scenario.faults:
            return None
        schedule = build_schedule(scenario, len(device_ids))
        kinds = {a.kind for a in schedule.actions}
        if "broker_restart" in kinds and not target.control_url:
            raise UsageError("fault broker_restart needs the embedded backend (target: embedded)")
        if not schedule.needs_proxy:
            return cls(schedule, target, None)
        if target.kind != "embedded" or not target.broker_url:
            raise UsageError("network faults (network_delay, stall, reset) need the embedded backend: the "
                             "fault proxy listens on 127.0.0.1, which only the embedded broker's certificate "
                             "names")
        url = urlparse(target.broker_url)
        if url.hostname is None or url.port is None:
            raise UsageError(f"fault proxy: bad broker URL {target.broker_url!r}")
        log_path = log_dir / "fault-proxy.log" if log_dir else None
        proxy = ProxyProcess(url.hostname, url.port, log_path=log_path)
        try:
            port = proxy.start()
        except (ProxyProcessError, OSError) as exc:
            proxy.stop()
            raise UsageError(f"the fault proxy did not start: {exc}") from exc
        routed = tuple(device_ids[i] for i in schedule.proxied)
        target = dataclasses.replace(target, broker_override=f"127.0.0.1:{port}",
                                     broker_override_devices=routed)
        return cls(schedule, target, proxy)

    def start(self, devices: Mapping[int, Any], run_start: float, run_start_wall: float,
              local: bool = True) -> None:
        """Walk the schedule from the run's start (monotonic `run_start`, wall `run_start_wall`)."""
        self.local = local
        self.runner = FaultRunner(self.schedule, clock=self.clock, run_start=run_start,
                                  run_start_wall=run_start_wall, devices=devices, proxy=self.proxy,
                                  control_url=self.target.control_url, run_device_faults=local)
        self.runner.start()

    def finish(self) -> list[dict[str, Any]]:
        """The log: one entry per scenario fault ({kind, at, duration, devices, started, ended, ...})."""
        by_index: dict[int, dict[str, Any]] = {}
        if self.runner is not None:
            self.runner.finish()
            by_index = dict(self.runner.records)
        out = []
        for action in self.schedule.actions:
            rec = by_index.get(action.index)
            if rec is None:
                rec = {**describe(action), "started": None, "ended": None, "affected": 0, "errors": [],
                       "cut": False}
                if action.kind in DEVICE_KINDS and not self.local:
                    rec["errors"].append("device faults run only with --processes 1 (not run)")
                else:
                    rec["errors"].append("not reached before the run ended")
            if self.proxy is not None and action.kind in ("network_delay", "stall", "reset"):
                rec["proxy"] = f"127.0.0.1:{self.proxy.port}"
            out.append(rec)
        if self.proxy is not None:
            try:
                stats = self.proxy.stats()
                out_stats = {k: stats[k] for k in ("connections_total", "resets", "max_hold_error_ms",
                                                   "hold_error_p99_ms", "upstream_failures") if k in stats}
                for rec in out:
                    if rec["kind"] in ("network_delay", "stall", "reset"):
                        rec["proxy_stats"] = out_stats
            except (ProxyProcessError, OSError):
                pass
        return out

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
