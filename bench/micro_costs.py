"""CPU cost of fleetsim's per-event bookkeeping, beside the publish it rides on (prints JSON, not a test).

What a unit test must not assert (a wall-clock or CPU bound is a benchmark, not a test): the recorder's cost per
event (on_send + on_ack, with and without the send log), the post-run join of 100,000 events, and the collector's
validation of one OTAEvent. Each is the median of `--rounds` rounds of process CPU time (the machine is shared;
wall time would count other processes), and the recorder's share is given against lean's measured CPU per QoS 2
publish from bench/results/throughput.json (no constant kept in a test).

    python bench/micro_costs.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, host_info, median, save_result

T0 = 1_700_000_000.0


def recorder_us_per_event(keep_send_log: bool, n: int = 50_000) -> float:
    from simulator.clock import VirtualClock
    from simulator.metrics.recorder import MetricsRecorder
    from simulator.records import SendRecord

    clock = VirtualClock()
    start = clock.wall()
    rec = MetricsRecorder(clock, start=start, keep_send_log=keep_send_log)
    records = [SendRecord(key=("d", "u", "Downloading", k % 101, k // 101), intended=start + k / 10_000,
                          sent=start + k / 10_000 + 0.0003, t_ms=None) for k in range(n)]
    t0 = time.process_time()
    for r in records:
        rec.on_send(r)
        r.acked = (r.sent or 0.0) + 0.002
        rec.on_ack(r)
    return (time.process_time() - t0) / n * 1e6


def join_ms(n: int = 100_000) -> float:
    import numpy as np

    from simulator.metrics.accounting import account
    from simulator.records import ArrivalRecord, SendRecord

    rng = np.random.default_rng(7)
    sends = [SendRecord(key=(f"d{k // 100}", "op", "Downloading", k, 0), intended=T0 + k / 1e4,
                        sent=T0 + k / 1e4 + 1e-4, t_ms=None, acked=T0 + k / 1e4 + 2e-3) for k in range(n)]
    delays = rng.exponential(0.004, n)
    arrivals = [ArrivalRecord(key=s.key, arrival=(s.sent or 0) + float(x), t_ms=None)
                for s, x in zip(sends, delays, strict=True)]
    t0 = time.process_time()
    account(sends, arrivals, end=T0 + 20)
    return (time.process_time() - t0) * 1e3


def classify_us_per_message(n: int = 5_000) -> float:
    import datetime

    import bson  # type: ignore[import-untyped]

    from simulator.backend.validation import Validator
    from simulator.interfaces.loader import load_interfaces

    validator = Validator("fleetsim", load_interfaces())
    when = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    payload = bson.dumps({"v": {"requestUUID": "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10", "status": "Downloading",
                                "statusProgress": 10, "statusCode": "", "message": ""}, "t": when})
    topic = "fleetsim/dev0000000000000000000A/io.edgehog.devicemanager.OTAEvent/event"
    t0 = time.process_time()
    for _ in range(n):
        validator.classify(topic, 2, payload)
    return (time.process_time() - t0) / n * 1e6


def lean_publish_cpu_us() -> float | None:
    """lean's median CPU per QoS 2 publish at 100 devices, as the last throughput benchmark measured it."""
    path = RESULTS_DIR / "throughput.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    lean = ((doc.get("summary") or {}).get("100") or {}).get("systems", {}).get("lean", {})
    value = lean.get("cpu_us_per_event_median")
    return float(value) if isinstance(value, int | float) else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = max(1, args.rounds)
    without = [recorder_us_per_event(False) for _ in range(rounds)]
    with_log = [recorder_us_per_event(True) for _ in range(rounds)]
    joins = [join_ms() for _ in range(rounds)]
    classify = [classify_us_per_message() for _ in range(rounds)]
    publish = lean_publish_cpu_us()
    rec = median(with_log)
    doc = {
        "bench": "micro_costs", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": host_info(),
        "n": rounds,
        "summary": {
            "recorder_us_per_event_no_send_log": median(without),
            "recorder_us_per_event_with_send_log": rec,
            "join_ms_100k_events": median(joins),
            "validator_classify_us_per_message": median(classify),
            "lean_publish_cpu_us": publish,
            "recorder_share_of_lean_publish": (rec / publish) if rec is not None and publish else None,
        },
        "runs": {"no_send_log": without, "with_send_log": with_log, "join_ms": joins, "classify_us": classify},
    }
    save_result("micro_costs", doc)
    print(json.dumps(doc["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
