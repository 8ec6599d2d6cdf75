"""CPU per wake-up of a parked greenlet: gevent's Event (set / clear / wait) against simulator.parking.Parker.

    python bench/parking_cost.py [--waits 20000] [--rounds 7]

The fleet's two long-lived greenlets (the lean I/O loop's and the device scheduler's) wait for work between
nearly every packet and due point of a rebooting campaign, so one wake-up is paid ~80 times per operation (26
due points, 52 acks). Two wakers, as in the engine: a libev timer of priority -1 (the scheduler's wait for its
next due point) and an fd's read watcher (the I/O loop's: a byte written to a socketpair, read by the woken
greenlet, which then writes the next). Both mechanisms run in the same process, alternating round by round,
so a shared machine loads both alike. Figure: process CPU (user + system) per wake-up, the send and recv
included for the fd case (the same in both), median of `--rounds` rounds. Wall time is not measured.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gevent
import gevent.event

from bench.common import median
from simulator.parking import Parker


class _EventWake:
    """The engine's wait before Parker: an Event set by the waker, cleared and waited on by the owner."""

    def __init__(self) -> None:
        self.event = gevent.event.Event()

    def park(self) -> None:
        self.event.clear()
        self.event.wait()

    def unpark(self) -> None:
        if not self.event.is_set():
            self.event.set()


def _timer_waits(make: Callable[[], Any], waits: int) -> float:
    loop = gevent.get_hub().loop
    wake = make()

    def owner() -> None:
        for _ in range(waits):
            timer = loop.timer(0.0, priority=-1)
            timer.start(wake.unpark, update=True)
            try:
                wake.park()
            finally:
                timer.stop()
                timer.close()

    t0 = time.process_time()
    gevent.spawn(owner).join()
    return (time.process_time() - t0) / waits


def _fd_waits(make: Callable[[], Any], waits: int) -> float:
    loop = gevent.get_hub().loop
    wake = make()
    a, b = socket.socketpair()
    a.setblocking(False)
    got = [0]
    ready = [False]  # set by the watcher's callback, in the hub

    def on_read() -> None:
        ready[0] = True
        wake.unpark()

    watcher = loop.io(a.fileno(), 1)
    watcher.start(on_read)

    def owner() -> None:
        b.send(b"x")
        while got[0] < waits:
            if not ready[0]:
                wake.park()
                continue
            ready[0] = False
            got[0] += len(a.recv(64))
            b.send(b"x")  # the next byte: readable on the hub's next poll, as an ack from the broker

    t0 = time.process_time()
    gevent.spawn(owner).join()
    cpu = (time.process_time() - t0) / waits
    watcher.close()
    a.close()
    b.close()
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waits", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    kinds: dict[str, Callable[[], Any]] = {"event": _EventWake, "parker": Parker}
    cases = {"timer": _timer_waits, "fd": _fd_waits}
    samples: dict[str, dict[str, list[float]]] = {c: {k: [] for k in kinds} for c in cases}
    for _ in range(args.rounds):
        for case, run in cases.items():
            for kind, make in kinds.items():
                samples[case][kind].append(run(make, args.waits) * 1e6)
    doc: dict[str, Any] = {"waits_per_round": args.waits, "rounds": args.rounds}
    for case, by_kind in samples.items():
        doc[case] = {kind: {"cpu_us_per_wake_median": round(median(v), 3), "all": [round(x, 3) for x in v]}
                     for kind, v in by_kind.items()}
        doc[case]["saved_us_per_wake"] = round(median(by_kind["event"]) - median(by_kind["parker"]), 3)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
