"""The throughput benchmark's `engine` system: what a user's `fleetsim run` does per OTAEvent, closed loop.

Per event, as in a run (simulator.generator.scheduler.DeviceScheduler and the Locust driver's stats bridge):
- the device is woken in the fleet's one scheduler greenlet (here: its previous PUBCOMP arrived and queued it;
  in a run: its due time came), served in a batch of at most scheduler.BATCH devices with the others woken,
  records the due point in the fleet's Pacer and calls `VirtualDevice.run_due` for one planned OTAEvent;
- VirtualDevice builds the event's key and SendRecord and publishes through the `lean` transport (the run's
  transport factory, `make_transport_factory("lean", ...)`: interface validation, BSON, paho, TLS);
- the ack comes back through the transport's I/O greenlet into the device's ack callback, then the run's
  callbacks (simulator.locust_adapter.stats_bridge.make_callbacks): the MetricsRecorder (send log, per-second
  counters, HDR histograms) and one Locust `request` event, logged by a Locust Environment's local runner
  into its RequestStats, as in `fleetsim run`.

Closed loop: every device has one QoS 2 OTAEvent in flight; it sends the next when the PUBCOMP of the last
arrived. The devices' plans are PUBLISH actions 1 µs apart; the driver runs exactly one per wake-up
(`run_due(now=next_due())`), so the plan's clock never releases more than one. The OTAEvent is
bench.common.OTA_VALUE, the bytes the other systems send.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from typing import Any

from bench.common import OTA_VALUE
from bench.throughput_baselines import PUBLISHING_MARK, _ids, _window

__all__ = ["child_engine", "closed_loop_actions", "plan_length"]

OTA_EVENT = "io.edgehog.devicemanager.OTAEvent"
# Per-device plans must outlast the window: sized for this many events/s over the whole child (warm-up +
# window + margin). Bare paho peaks near 12,000/s at 100 devices on this machine; 2.5x that is headroom.
PLAN_EVENTS_PER_S = 30_000
PLAN_MARGIN_S = 3.0
CONNECT_PARALLEL = 50  # as the other gevent systems connect (throughput.py _connect_all)


def plan_length(devices: int, warmup_s: float, seconds: float) -> int:
    """OTAEvents planned per device: enough for PLAN_EVENTS_PER_S over the child's publishing time."""
    return max(10, math.ceil(PLAN_EVENTS_PER_S * (warmup_s + seconds + PLAN_MARGIN_S) / max(1, devices)))


def closed_loop_actions(count: int) -> list[Any]:
    """`count` PUBLISH actions of the benchmark's OTAEvent, 1 µs apart, occurrences 0..count-1 (so every event
    has its own key). Shared by every device: PlannedAction is frozen, a device keys events with its own id."""
    from simulator.events import ActionKind, PlannedAction

    return [PlannedAction(device=0, offset_us=j, kind=ActionKind.PUBLISH, interface=OTA_EVENT, path="/event",
                          value=dict(OTA_VALUE), occurrence=j) for j in range(count)]


def child_engine(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import gc
    import time

    import gevent
    import gevent.event
    import gevent.pool
    from locust import User
    from locust.env import Environment

    from simulator.arrival.pacer import Pacer
    from simulator.clock import MonotonicClock
    from simulator.device import VirtualDevice
    from simulator.generator.fleet import make_transport_factory
    from simulator.generator.scheduler import BATCH
    from simulator.lifecycle.plans import Firmware
    from simulator.locust_adapter.stats_bridge import make_callbacks
    from simulator.metrics.recorder import MetricsRecorder
    from simulator.records import SendRecord
    from simulator.target_info import TargetInfo

    class Idle(User):  # Locust needs a user class to build a runner; none is spawned
        abstract = False

    ids = _ids(args)
    target = TargetInfo(kind="embedded", realm=info["realm"], pairing_url=info["pairing_url"],
                        agent_jwt=info["agent_jwt"], ca_file=info["ca_file"],
                        credentials_dir=info["credentials_dir"])
    clock = MonotonicClock()
    factory, stop_transports = make_transport_factory("lean", target, clock)
    env = Environment(user_classes=[Idle])
    runner = env.create_local_runner()  # its request listener logs every event into env.stats, as in a run
    recorder = MetricsRecorder(clock)
    callbacks = make_callbacks(env, recorder)
    actions = closed_loop_actions(plan_length(len(ids), args.warmup, args.seconds))
    firmware = Firmware("fleetsim-os", "1.0.0", "bench")
    state = {"acked": 0, "ack_errors": 0, "publish_errors": 0, "exhausted": 0}
    ready: deque[int] = deque()  # devices whose PUBCOMP arrived: the scheduler's ready queue
    pump_wake = gevent.event.Event()

    def sink_for(i: int) -> Any:
        on_record = callbacks.on_record

        def wake() -> None:  # DeviceScheduler.wake: O(1), no switch
            ready.append(i)
            if not pump_wake.is_set():
                pump_wake.set()

        def sink(rec: SendRecord) -> None:
            on_record(rec)
            if rec.sent is None:
                state["publish_errors"] += 1
            elif rec.acked is None or rec.error is not None:
                state["ack_errors"] += 1
            else:
                state["acked"] += 1
            wake()

        return sink

    start = clock.monotonic()
    devices = [VirtualDevice(i, dev, factory(dev), clock, run_start=start, firmware=firmware, actions=actions,
                             send_sink=sink_for(i), onboarding_sink=callbacks.on_onboarding)
               for i, dev in enumerate(ids)]
    pacer = Pacer(clock, start, max_lag_s=3600.0)  # as ProcessFleet.begin: late is counted, never dropped
    running = True

    def serve(i: int) -> None:
        """DeviceScheduler's per-event work for one device, due when its ack came instead of by the clock."""
        device = devices[i]
        due = device.next_due()
        if due is None:
            state["exhausted"] += 1  # the plan ran out before the window ended: the sample is refused
            return
        pacer.record(due - start, clock.monotonic())
        device.run_due(due, hold_reboot=True, hold_reconnect=True)

    def pump() -> None:
        """DeviceScheduler._run: serve the woken devices BATCH at a time, yield to the I/O greenlet between."""
        while running:
            if not ready:
                pump_wake.clear()
                pump_wake.wait()
                continue
            for _ in range(min(BATCH, len(ready))):
                serve(ready.popleft())
            gevent.sleep(0)

    t0 = time.monotonic()
    gevent.pool.Pool(CONNECT_PARALLEL).map(lambda d: d.start(), devices)  # onboarding + startup properties
    connect_s = round(time.monotonic() - t0, 2)
    gc.collect()
    gc.freeze()  # as ProcessFleet.begin does when a run's clock starts: onboarding garbage out of the GC
    ready.extend(range(len(devices)))  # every device's first event is due now
    greenlets = [gevent.spawn(pump)]
    print(PUBLISHING_MARK, file=sys.stderr, flush=True)
    try:
        out = _window(lambda: state["acked"], args.warmup, args.seconds, gevent.sleep)
        exhausted_in_window = state["exhausted"]
    finally:
        running = False
        pump_wake.set()
        gevent.killall(greenlets, timeout=5)
        for device in devices:
            device.stop()
        stop_transports()
        runner.quit()
    locust_logged = env.stats.total.num_requests + env.stats.total.num_failures
    doc = {"connect_s": connect_s, **out, **state, "plan_per_device": len(actions),
           "locust_requests": locust_logged, "recorder_acked": recorder.totals["acked"]}
    if exhausted_in_window:
        return {"error": f"{exhausted_in_window} device plans ran out inside the window (raise PLAN_EVENTS_PER_S)",
                **doc, "events_per_s": None}
    return doc
