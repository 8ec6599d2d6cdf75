"""The device ramp seen from the load generator: how many users (= devices) to have online, at what rate.

Pure (no Locust). The one place the ramp is turned into user counts (`ramp_users`): the Locust shape of plain
`locust -f` (locust_adapter/shape.py, through `shape_step`) and the Locust driver of `fleetsim run`
(locust_adapter/runner.py) both ask it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.plan import devices_online_at, ramp_spawn_rate
from simulator.scenario.model import FleetSpec, Scenario

__all__ = ["DEFAULT_SPAWN_RATE", "SPAWN_LEAD_S", "default_spawn_rate", "ramp_users", "shape_step"]

# Locust ticks a shape once a second (`fleetsim run` every 0.25 s) and a device takes a moment to onboard, so
# both ask for the count the ramp reaches this far ahead: online early is harmless (the plan gives a device
# nothing before its online offset), online late would make its first operation late.
SPAWN_LEAD_S = 1.0
# The spawn rate without -r and without a ramp (devices per second).
DEFAULT_SPAWN_RATE = 500.0


def default_spawn_rate(fleet: FleetSpec) -> float:
    """Devices brought online per second when -r is not given: the ramp's steepest stage, else the whole
    fleet at up to DEFAULT_SPAWN_RATE. Shared by the Locust shape and `fleetsim run`."""
    return ramp_spawn_rate(fleet.ramp) if fleet.ramp else min(float(fleet.devices), DEFAULT_SPAWN_RATE)


def ramp_users(fleet: FleetSpec, run_s: float) -> int:
    """Users (= devices) to have online `run_s` seconds into the run: the ramp's count SPAWN_LEAD_S ahead
    (the whole fleet without a ramp)."""
    return devices_online_at(fleet.ramp, run_s + SPAWN_LEAD_S, fleet.devices)


def shape_step(scenario: Scenario, given: Mapping[str, Any], run_s: float, plan_s: float,
               end_s: float) -> tuple[int, float] | None:
    """(users, spawn rate) at `run_s` seconds of the shape, or None when the test is over.

    `plan_s`: seconds since the run's clock started (the fleet's start; the shape's time when unknown);
    `end_s`: when the run ends on that clock without -t (the plan played and drained, as `fleetsim run`);
    `given`: -u/-r/-t as given on the command line (None or absent: not given).
    """
    run_time = given.get("run_time")
    if run_time:
        if run_s >= float(run_time):
            return None
    elif plan_s >= end_s:
        return None
    fleet = scenario.fleet
    users = ramp_users(fleet, run_s)
    if given.get("users"):
        users = min(users, int(given["users"]))
    return users, float(given.get("spawn_rate") or default_spawn_rate(fleet))
