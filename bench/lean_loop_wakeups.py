"""CPU per read event served by the lean I/O loop (simulator.transports.lean_loop.IoLoop), events one at a time.

    python bench/lean_loop_wakeups.py                                  # this tree
    python bench/lean_loop_wakeups.py --baseline-root /tmp/other-tree  # A/B, alternating, in one invocation

On a rebooting campaign most wake-ups of the I/O greenlet serve one connection (one ack at a time), so what one
wake-up costs -- hub iterations, greenlet switches -- is paid ~50 times per operation. Here: 200 socketpairs
registered with an IoLoop (gevent-patched, as the engine), a writer greenlet sends one byte to a random pair
every 0.2 ms, each channel reads it. Figure: process CPU time per event (the writer's own cost included, the
same in both trees), median of `--rounds` child processes per tree; and greenlet switches per event (counted
with greenlet.settrace in one more child: a count, which a loaded machine does not disturb).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _child(events: int, count_switches: bool) -> float:
    from gevent import monkey

    monkey.patch_all()
    import random
    import socket

    import gevent
    import greenlet

    from simulator.transports.lean_loop import IoLoop

    loop = IoLoop()
    pairs = [socket.socketpair() for _ in range(200)]
    got = [0]

    class Channel:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def handle_read(self) -> None:
            with contextlib.suppress(BlockingIOError):
                got[0] += len(self.sock.recv(64))

        def handle_write(self) -> None:
            pass

        def handle_misc(self, now: float) -> None:
            pass

    for a, _ in pairs:
        a.setblocking(False)
        loop.register(a.fileno(), Channel(a))
    rng = random.Random(1)

    def writer() -> None:
        for _ in range(events):
            pairs[rng.randrange(len(pairs))][1].send(b"x")
            gevent.sleep(0.0002)  # the pace at which acks arrive, not a wait for logic

    switches = [0]

    def trace(event: str, args: Any) -> None:
        if event == "switch":
            switches[0] += 1

    if count_switches:  # a count, not a time: the same on a loaded machine
        greenlet.settrace(trace)
    t0 = time.process_time()
    gevent.spawn(writer).join()
    while got[0] < events:
        gevent.sleep(0.01)  # what is still queued drains
    cpu = (time.process_time() - t0) / events
    greenlet.settrace(None)
    loop.stop()
    return switches[0] / events if count_switches else cpu


def _run(root: Path, events: int, count_switches: bool = False) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(events)]
                         + (["--switches"] if count_switches else []),
                         env=env, capture_output=True, text=True, check=True, cwd=str(root))
    return float(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", type=int, default=0)
    ap.add_argument("--switches", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(_child(args.child, args.switches))
        return 0
    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    samples: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():
            samples[name].append(_run(root, args.events) * 1e6)
    doc: dict[str, Any] = {"events_per_round": args.events, "rounds": args.rounds}
    for name, values in samples.items():
        values.sort()
        doc[name] = {"cpu_us_per_event_median": round(values[len(values) // 2], 2),
                     "all": [round(v, 2) for v in values],
                     "greenlet_switches_per_event": round(_run(roots[name], args.events, True), 3)}
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
