"""CPU of the device scheduler's greenlet per due point, on a real clock and the memory transport (issue 16).

    python bench/scheduler_cost.py                                  # this tree
    python bench/scheduler_cost.py --baseline-root /tmp/main-tree   # A/B: each round runs both, alternating

In a campaign every OTAEvent is a due point of its device (simulator.generator.scheduler.DeviceScheduler): the
scheduler's one greenlet sleeps until the earliest due point, serves what is due, and sleeps again. This plays
`--devices` devices, each with `--events` OTAEvent publishes `--spacing-ms` apart (staggered over the devices,
so that due points seldom coincide, as in a campaign at a moderate rate), through the started scheduler in a
gevent hub, on a MonotonicClock, over the in-memory transport (acked at once): what is left is the scheduler's
own loop, its waits, the device's step and the recorder-less send path. Figure: process CPU (user + system)
per due point, median of `--rounds` rounds, each root in its own child process, alternating A, B, A, B...
Wall time is not measured; it only bounds a round (devices x events / rate).
"""

from __future__ import annotations

import sys

if "--child" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _child(devices: int, events: int, spacing_s: float) -> float:
    """CPU seconds per due point in this process (the simulator on sys.path)."""
    import gevent
    import gevent.event

    from simulator.arrival.pacer import Pacer
    from simulator.clock import MonotonicClock
    from simulator.device import VirtualDevice
    from simulator.events import OTA_EVENT_INTERFACE, ActionKind, PlannedAction
    from simulator.generator.scheduler import DeviceScheduler
    from simulator.lifecycle.plans import Firmware
    from simulator.transports.memory import MemoryBroker

    clock = MonotonicClock()
    start = clock.monotonic() + 0.2  # every device is added before its first due point

    @dataclass
    class Fleet:  # the FleetView a ProcessFleet is
        clock: MonotonicClock
        run_start: float
        pacer: Pacer | None = None
        stopping: gevent.event.Event = field(default_factory=gevent.event.Event)
        max_start_lag_s: float = 3600.0

        def plan_over(self, index: int) -> bool:
            return True

    fleet = Fleet(clock, start)
    fleet.pacer = Pacer(clock, start, max_lag_s=3600.0)
    broker = MemoryBroker(clock=clock)
    sent: list[Any] = []
    scheduler = DeviceScheduler(fleet)
    results = []
    for i in range(devices):
        actions = [PlannedAction(device=i, offset_us=round((k * spacing_s + i * spacing_s / devices) * 1e6),
                                 kind=ActionKind.PUBLISH, interface=OTA_EVENT_INTERFACE, path="/event",
                                 value={"requestUUID": "11111111-1111-4111-8111-111111111111",
                                        "status": "Downloading", "statusProgress": k, "statusCode": "",
                                        "message": ""}, occurrence=k)
                   for k in range(events)]
        device = VirtualDevice(i, f"dev{i}", broker(f"dev{i}"), clock, run_start=start,
                               firmware=Firmware("edgehog-os", "1.0.0", "b1"), actions=actions,
                               send_sink=sent.append)
        device.start()
        results.append(scheduler.add(device))
    scheduler.start()
    t0 = time.process_time()
    gevent.joinall(results)
    cpu = time.process_time() - t0
    scheduler.stop()
    if len(sent) != devices * events:
        raise SystemExit(f"{len(sent)} sends for {devices * events} due points")
    return cpu / (devices * events)


def _run(root: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--devices", str(args.devices),
            "--events", str(args.events), "--spacing-ms", str(args.spacing_ms)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=str(root))
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--events", type=int, default=100, help="due points per device")
    ap.add_argument("--spacing-ms", type=float, default=50.0, help="between a device's due points")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(_child(args.devices, args.events, args.spacing_ms / 1000))
        return 0
    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    samples: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():
            samples[name].append(_run(root, args) * 1e6)
    doc: dict[str, Any] = {"devices": args.devices, "events": args.events, "spacing_ms": args.spacing_ms,
                           "rounds": args.rounds}
    for name, values in samples.items():
        values.sort()
        doc[name] = {"cpu_us_per_due_point_median": round(values[len(values) // 2], 2),
                     "all": [round(v, 2) for v in values]}
    if "baseline" in doc:
        doc["ratio_median"] = round(doc["this"]["cpu_us_per_due_point_median"]
                                    / doc["baseline"]["cpu_us_per_due_point_median"], 3)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
