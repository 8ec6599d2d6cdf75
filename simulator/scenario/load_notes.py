"""Notices about what a scenario will load, said before a run: a larger fleet is not more load by itself.

OTA operations come from the arrival process, not from the fleet size (each operation goes to the device idle
longest). `--devices 50` on quickstart (arrival `count: 20`) brings 50 devices online but still plays 20
operations: 30 devices only onboard and publish their handshake. Said at run time rather than scaling the
arrivals silently, because the scenario's arrival rate is what a load test is about: to add load, raise
`--rate` or the arrival's `count`.
"""

from __future__ import annotations

from simulator.scenario.model import Scenario

__all__ = ["idle_devices_note"]


def idle_devices_note(scenario: Scenario) -> str:
    """One line when fewer OTA operations can arrive than there are devices ("" otherwise, or in campaign mode,
    where the campaign, not the arrivals, picks the devices)."""
    if scenario.mode != "self":
        return ""
    arrival, devices = scenario.arrival, scenario.fleet.devices
    if arrival.count and arrival.count < devices:
        bound, why = arrival.count, f"arrival.count is {arrival.count}"
    elif not arrival.count and arrival.model in ("constant", "poisson") and arrival.rate * scenario.duration < devices:
        bound = int(arrival.rate * scenario.duration)
        why = f"arrival.rate {arrival.rate:g}/s over duration {scenario.duration:g} s gives about {bound}"
    else:
        return ""
    return (f"note: {devices} devices but {why} OTA operations: at most {bound} devices get one, the other "
            f"{devices - bound} only connect; raise --rate or the arrival's count to add load")
