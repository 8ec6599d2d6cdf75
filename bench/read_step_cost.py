"""CPU of LeanClient.loop_read around one packet read -- the step the lean I/O loop runs per ready socket.

    python bench/read_step_cost.py                                  # this tree
    python bench/read_step_cost.py --baseline-root /tmp/other-tree  # A/B: each round runs both, alternating

At one ack per wake-up (a rebooting campaign: PUBREC, then PUBCOMP, of one OTAEvent in flight per device),
every ack costs one `loop_read` call around its `_packet_read`. This times that wrapper alone: a LeanClient
with one message in flight whose `_packet_read` is replaced by a stub returning success (the read itself,
measured by bench/lean_op_cost.py and bench/lean_loop_wakeups.py, is left out). Figure: process CPU per call,
median of `--rounds` child processes per tree, alternating A, B, A, B...
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _child(calls: int) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simulator.transports.lean_client import LeanClient

    class Stubbed(LeanClient):
        def _packet_read(self) -> Any:
            return mqtt.MQTT_ERR_SUCCESS

    client = Stubbed(CallbackAPIVersion.VERSION2, client_id="bench", protocol=mqtt.MQTTv311)
    client._sock = object()  # type: ignore[assignment]  # never used: _packet_read is stubbed
    client._out_messages[1] = mqtt.MQTTMessage(1, b"t")
    loop_read = client.loop_read
    t0 = time.process_time()
    for _ in range(calls):
        loop_read()
    cpu = (time.process_time() - t0) / calls
    client._sock = None
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(_child(args.child))
        return 0
    sys.path.insert(0, str(ROOT))  # the parent only: each child imports the simulator/ of the root it measures
    from bench.common import ab_samples

    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    samples = ab_samples(str(Path(__file__).resolve()), roots, args.rounds, args.calls, 1e9)
    doc: dict[str, Any] = {"calls_per_round": args.calls, "rounds": args.rounds}
    for name, values in samples.items():
        doc[name] = {"cpu_ns_per_call_median": round(statistics.median(values)),
                     "all": sorted(round(v) for v in values)}
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
