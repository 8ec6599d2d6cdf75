"""CPU of sealing one second of the generator's recorder (issue 16: the per-second share of a campaign's CPU).

    python bench/seal_cost.py                                  # this tree
    python bench/seal_cost.py --baseline-root /tmp/main-tree   # A/B: each round runs both, alternating

Every second of a run the MetricsRecorder seals the second before last (SecondBucket.seal): per latency path
(send lag, ack, corrected ack: three in a generator) it adds the second's histogram into the run totals, takes
its p50/p99 and encodes it. That cost is per second, not per event, so in a campaign's CPU per operation it
weighs most at low rates (at 15 operations/s, each operation carries 1/15 of a second's seal). Here a bucket
gets `--values` latencies (exponential, mean 4 ms, as loopback acks) on each of the three paths, is sealed into
one run-total set, and the figure is the process CPU (user + system) per seal, median of `--rounds` rounds of
`--seconds` seals, each root in its own child process, alternating A, B, A, B...
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("send_lag", "ack", "ack_corrected")  # a generator's three per-second paths (metrics.names)


def _child(seconds: int, values: int) -> float:
    """CPU seconds per seal in this process (the simulator on sys.path)."""
    from simulator.metrics.histograms import HistogramSet
    from simulator.metrics.second_bucket import SecondBucket

    rng = random.Random(16)
    latencies = [rng.expovariate(1 / 0.004) for _ in range(values)]
    totals = HistogramSet()
    spent = 0.0
    for _ in range(seconds):
        bucket = SecondBucket()
        for path in PATHS:
            hist = bucket.hist(path)
            for v in latencies:
                hist.record_s(v)
        t0 = time.process_time()
        bucket.seal(totals)
        spent += time.process_time() - t0
    return spent / seconds


def _run(root: Path, seconds: int, values: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(seconds),
                          "--values", str(values)], env=env, capture_output=True, text=True, check=True,
                         cwd=str(root))
    return float(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=300, help="seals per round")
    ap.add_argument("--values", type=int, default=400, help="latencies per path per second")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(_child(args.child, args.values))
        return 0
    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    samples: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():
            samples[name].append(_run(root, args.seconds, args.values) * 1e6)
    doc: dict[str, Any] = {"seals_per_round": args.seconds, "values_per_path": args.values, "rounds": args.rounds}
    for name, values in samples.items():
        values.sort()
        doc[name] = {"cpu_us_per_seal_median": round(values[len(values) // 2], 1),
                     "all": [round(v, 1) for v in values]}
    if "baseline" in doc:
        doc["ratio_median"] = round(doc["this"]["cpu_us_per_seal_median"]
                                    / doc["baseline"]["cpu_us_per_seal_median"], 3)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
