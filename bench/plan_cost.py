"""CPU of planning one rebooting OTA operation, generated and consumed as a run does (issue 16).

    python bench/plan_cost.py                                       # this tree
    python bench/plan_cost.py --baseline-root /tmp/base-tree        # A/B: each round runs both, alternating

In the campaign benchmark's play phase the plan costs ~8 % of the generator's CPU, ~1.4 ms per operation
(bench/campaign_capacity.py --cpu-profile at 7ee1af5): simulator.plan `_plan_steps` and the lifecycle planner
(draws, the machine, the actions), the cut, and the cursor's digest and hand-over. This isolates it, so a change
to it can be compared in one invocation: `plan_for` + `bound_plan` on bench.campaign_capacity's
`campaign_scenario(1000, 40, N)` (every operation succeeds and reboots: 26 OTAEvents, a REBOOT and 5
properties), its cursor keeping every device, advanced as ProcessFleet.feed does (a second of plan each
FEED_PERIOD_S, LOOKAHEAD_US ahead, in slices of FEED_SLICE_US and at most PLAN_SLICE_STEPS steps) with every fed
device's actions taken, then `finish()` (the totals and the digest), in a gevent-patched process as a run is
(the patch makes numpy's per-Generator lock a Python-level RLock: it costs per draw). Building the plan's ids and
each device's first numpy Generator are included (a run pays them once per device: 1,000 here).

Figure: process CPU time (user + system) per operation, median of `--rounds` rounds of `--operations` each, each
root in its own child process, alternating A, B, A, B... Each child also reports the plan's digest (plan_digest):
the two sides must plan the same bytes, and the benchmark fails when they do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEVICES = 1000
RATE = 40.0  # operations per second: the campaign benchmark's goal rate
FEED_PERIOD_US = 1_000_000  # simulator.generator.fleet FEED_PERIOD_S, in µs


def _child(operations: int) -> str:
    """'<CPU seconds per operation> <plan digest> <simulator/ measured>' in this process."""
    from gevent import monkey

    monkey.patch_all()  # before numpy: its Generator lock becomes gevent's, as in a run
    import simulator
    from simulator.generator.fleet import FEED_SLICE_US, LOOKAHEAD_US
    from simulator.generator.plan_pace import PLAN_SLICE_STEPS
    from simulator.run.plans import bound_plan, plan_for

    sys.path.append(str(ROOT))  # bench/ of this tree, after the measured root's simulator/ (imported above)
    from bench.campaign_capacity import campaign_scenario

    scenario = campaign_scenario(DEVICES, RATE, operations)
    held = 0
    t0 = time.process_time()
    bounded = bound_plan(plan_for(scenario), scenario.duration, scenario.graceful_stop)
    cursor = bounded.plan.cursor
    cursor.keep(range(DEVICES))
    end_us = round(scenario.duration * 1e6)
    for now_us in range(0, end_us + FEED_PERIOD_US, FEED_PERIOD_US):  # ProcessFleet.feed with pause
        target = now_us + LOOKAHEAD_US
        while not cursor.reached(target):
            until = min(target, max(cursor.horizon_us, now_us) + FEED_SLICE_US)
            for index in cursor.advance(until, PLAN_SLICE_STEPS):
                held += len(cursor.take(index))
    totals = cursor.finish()
    for index in range(DEVICES):
        held += len(cursor.take(index))
    cpu = (time.process_time() - t0) / operations
    if totals.operations != operations or totals.dropped or held != totals.actions:
        raise SystemExit(f"planned {totals.operations} operations ({totals.dropped} dropped), handed over "
                         f"{held} of {totals.actions} actions; expected {operations} operations, all handed over")
    return f"{cpu} {bounded.digest} {Path(simulator.__file__).parent}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--operations", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(_child(args.child))
        return 0
    sys.path.insert(0, str(ROOT))  # the parent only: each child imports the simulator/ of the root it measures
    from bench.common import ab_samples, save_result, stamped

    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root).resolve()} if args.baseline_root else {})
    tails: dict[str, list[str]] = {}
    samples = ab_samples(str(Path(__file__).resolve()), roots, args.rounds, args.operations, 1000, tails=tails)
    doc: dict[str, Any] = {"operations_per_round": args.operations, "rounds": args.rounds, "devices": DEVICES,
                           "rate": RATE}
    digests: dict[str, set[str]] = {}
    for name, values in samples.items():
        seen = {tuple(tail.split(" ", 1)) for tail in tails[name]}
        digests[name] = {digest for digest, _ in seen}
        where = {path for _, path in seen}
        if where != {str(roots[name] / "simulator")}:
            raise SystemExit(f"{name}: measured {sorted(where)}, not {roots[name] / 'simulator'}")
        in_order = list(values)
        values.sort()
        doc[name] = {"cpu_ms_per_operation_median": round(values[len(values) // 2], 4), "n": len(values),
                     "rounds_in_order": [round(v, 4) for v in in_order], "plan_digest": sorted(digests[name])}
    everyone = set().union(*digests.values())
    if len(everyone) != 1:
        print(json.dumps(doc, indent=2))
        raise SystemExit(f"the plans differ: digests {digests}")
    if "baseline" in doc:
        doc["ratio_median"] = round(doc["this"]["cpu_ms_per_operation_median"]
                                    / doc["baseline"]["cpu_ms_per_operation_median"], 3)
    path = save_result("plan_cost", stamped("plan_cost", doc))
    print(json.dumps(doc, indent=2))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
