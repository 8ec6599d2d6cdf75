"""The Locust user: one slot of this process's devices (one device when -u equals the fleet size).

Open model (issue 5): a user does not loop on `wait_time`; its devices act at the intended times of the plan,
on an absolute grid from the run's start (simulator.generator.fleet.drive_device), so spawn batches cannot
phase-align publishes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import gevent
from locust import User, task

from simulator.device import VirtualDevice
from simulator.generator.fleet import drive_device
from simulator.locust_adapter.context import context_of
from simulator.locust_adapter.stats_bridge import make_callbacks

__all__ = ["DeviceUser"]


class DeviceUser(User):
    """A slot of virtual Edgehog devices (Locust `User`)."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.devices: list[VirtualDevice] = []

    def wait_time(self) -> float:  # never used for pacing; the task below only returns at the end
        return 1.0

    def on_start(self) -> None:
        ctx = context_of(self.environment)
        fleet = ctx.ensure_fleet(make_callbacks(self.environment, ctx.ensure_recorder()))
        slot, slots = ctx.claim_slot()
        self.devices = [fleet.create(index) for index in fleet.slot_devices(slot, slots)]
        for device in self.devices:
            fleet.bring_online(device)

    @task
    def run_devices(self) -> None:
        fleet = context_of(self.environment).fleet
        assert fleet is not None
        if len(self.devices) == 1:
            drive_device(fleet, self.devices[0])
        elif self.devices:
            gevent.joinall([gevent.spawn(drive_device, fleet, d) for d in self.devices])
        fleet.stopping.wait()  # done with the plan: stay a user (online) until the run stops

    def on_stop(self) -> None:
        for device in self.devices:
            # Best effort: a device that fails to stop must not keep the others connected; its unacked
            # publishes were already recorded as never_acked by stop() before anything could fail.
            with contextlib.suppress(Exception):
                device.stop()
