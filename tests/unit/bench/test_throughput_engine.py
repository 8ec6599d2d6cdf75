"""The throughput benchmark's engine plan: a VirtualDevice releases exactly one OTAEvent per wake-up.

Virtual clock and memory transport (the real VirtualDevice and SendRecords; no network, no benchmark run).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.throughput_engine import OTA_EVENT, closed_loop_actions, plan_length
from simulator.clock import VirtualClock
from simulator.device import VirtualDevice
from simulator.lifecycle.plans import Firmware
from simulator.records import SendRecord
from simulator.transports.memory import MemoryBroker


def test_plan_length_covers_the_window_and_shrinks_with_the_fleet() -> None:
    assert plan_length(100, 1.0, 2.0) == 1800  # 30,000 events/s x (1 + 2 + 3 s margin) / 100 devices
    assert plan_length(1000, 1.0, 2.0) == 180
    assert plan_length(10**9, 1.0, 2.0) == 10  # never fewer than 10


def test_one_otaevent_in_flight_per_wake_up() -> None:
    clock = VirtualClock(start=100.0)
    broker = MemoryBroker(clock=clock, auto_ack=False)
    records: list[SendRecord] = []
    device = VirtualDevice(0, "dev-0", broker("dev-0"), clock, run_start=clock.monotonic(),
                           firmware=Firmware("os", "1", "b"), actions=closed_loop_actions(5),
                           send_sink=records.append)
    device.start()
    clock.advance(1.0)  # every planned action is now past due: only the driver's `now` holds them back
    transport = broker.transports["dev-0"]
    for sent in range(1, 6):
        due = device.next_due()
        assert due is not None
        assert device.run_due(due, hold_reboot=True) == 1
        assert device.pending_acks == 1  # closed loop: one in flight
        published = [m for m in broker.published_by("dev-0") if m.interface == OTA_EVENT]
        assert len(published) == sent
        assert transport.ack() == 1
        assert device.pending_acks == 0
    assert device.next_due() is None  # the plan is exhausted: the benchmark refuses such a sample
    assert [r.key[4] for r in records] == [0, 1, 2, 3, 4]  # every event its own key (occurrence)
    assert all(r.acked is not None and r.error is None for r in records)
