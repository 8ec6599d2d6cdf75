"""CPU of wire.encode_value_at per OTAEvent: the BSON payload of one operation's 26 events (issue 16).

    python bench/encode_cost.py                                  # this tree
    python bench/encode_cost.py --baseline-root /tmp/other-tree  # A/B: each round runs both, alternating

The value of every OTAEvent of a rebooting campaign goes through `encode_value_at` (simulator.transports.wire).
Here one operation's 26 values (the same requestUUID, status, statusCode and message; statusProgress 0..25),
encoded `--operations` times with a new timestamp each. Figure: process CPU per event, median of `--rounds`
child processes per tree, alternating A, B, A, B...
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


def _child(operations: int) -> float:
    from simulator.transports import wire

    values = [{"requestUUID": "11111111-1111-4111-8111-111111111111", "status": "Downloading",
               "statusProgress": k, "statusCode": "", "message": ""} for k in range(26)]
    encode = wire.encode_value_at
    t0 = time.process_time()
    for i in range(operations):
        for value in values:
            encode(value, 1_700_000_000_000 + i)
    return (time.process_time() - t0) / (operations * len(values))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--operations", type=int, default=20000)
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
    samples = ab_samples(str(Path(__file__).resolve()), roots, args.rounds, args.operations, 1e6)
    doc: dict[str, Any] = {"events_per_round": args.operations * 26, "rounds": args.rounds}
    for name, values in samples.items():
        doc[name] = {"cpu_us_per_event_median": round(statistics.median(values), 3),
                     "all": sorted(round(v, 3) for v in values)}
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
