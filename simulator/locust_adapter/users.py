"""The Locust user: one virtual device (the next unclaimed one of this process's partition).

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
from simulator.locust_adapter.hooks import build_fleet

__all__ = ["DeviceUser"]


class DeviceUser(User):
    """A virtual Edgehog device (Locust `User`); a user started after every device was claimed idles."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.devices: list[VirtualDevice] = []

    def wait_time(self) -> float:  # never used for pacing; the task below only returns at the end
        return 1.0

    def on_start(self) -> None:
        ctx = context_of(self.environment)
        fleet = ctx.fleet or build_fleet(ctx)  # test_start normally built it already
        index = fleet.claim_next()
        self.devices = [] if index is None else [fleet.create(index)]
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
