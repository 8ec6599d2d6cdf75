"""Plan only: the memory and CPU of planning a soak run, without running it (issue 14: the plan for 10 M events).

For each source tree given (`--tree`, default this one), a child process imports that tree's `simulator` and
plans bench/soak_memory.py's scenario for --events events the way one generator process does:
- a lazy tree (the plan has a cursor): the process keeps every device (a local run), advances the cursor one
  second of plan at a time with the fleet's look-ahead and hands every device its actions (taken and dropped,
  as devices play and forget them), then asks for the digest and the cut as the run's end does;
- an eager tree (before issue 14's lazy plan): `plan_for` + `bound_plan` build the whole plan, every device
  takes its action list (`actions_for`), then the digest.
It prints, per tree, one JSON object: CPU seconds (getrusage, user + system) of the planning, the time to the
first playable action, RSS (psutil) before, after 100k events were handed out (eager: after the build) and at
the end, peak RSS (ru_maxrss), and the plan's digest and counts (equal digests: the same plan).

    python bench/plan_memory.py --events 1000000 --tree /tmp/base --tree .
    python bench/plan_memory.py --events 10000000             # this tree only (an eager tree needs ~9 GB)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
FROM_EVENTS = 100_000  # growth is measured from here (bench/soak_memory.py's FROM_EVENTS)
STEP_US = 1_000_000  # the fleet's feeder period (simulator.generator.fleet.FEED_PERIOD_S)
LOOKAHEAD_US = 5_000_000  # simulator.generator.fleet.LOOKAHEAD_US


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


def child(events: int, rate: float, devices: int) -> dict[str, Any]:
    import psutil

    # The bench folder, not the repository's root: the child's `simulator` is the tree under test (PYTHONPATH).
    sys.path.insert(0, str(BENCH))
    from soak_memory import scenario_yaml  # type: ignore[import-not-found]

    from simulator.events import ActionKind
    from simulator.run.plans import bound_plan, plan_for
    from simulator.scenario.loader import load_scenario_text

    proc = psutil.Process()

    def rss_mb() -> float:
        return round(proc.memory_info().rss / 2**20, 1)

    # The two-event shape, as the README's plan figures were measured (soak_memory's default became a campaign's
    # 8 events per operation: 4x fewer operations to plan per event).
    scenario = load_scenario_text(scenario_yaml(devices, rate, events, "two"))
    before = rss_mb()
    cpu0, t0 = _cpu_s(), time.monotonic()
    plan = plan_for(scenario)
    bounded = bound_plan(plan, scenario.duration, scenario.graceful_stop)
    handed = 0
    at_from: float | None = None
    first_s = 0.0
    if hasattr(bounded.plan, "cursor"):
        kind = "lazy"
        cursor = bounded.plan.cursor
        cursor.keep(range(devices))
        now_us = 0
        while not cursor.done:
            for index in cursor.advance(now_us + LOOKAHEAD_US):
                handed += sum(1 for a in cursor.take(index) if a.kind is ActionKind.PUBLISH)
            if not first_s:
                first_s = time.monotonic() - t0
            if at_from is None and handed >= FROM_EVENTS:
                at_from = rss_mb()
            now_us += STEP_US
        for index in range(devices):
            handed += sum(1 for a in cursor.take(index) if a.kind is ActionKind.PUBLISH)
    else:
        kind = "eager"
        for index in range(devices):
            handed += sum(1 for a in bounded.plan.actions_for(index) if a.kind is ActionKind.PUBLISH)
        first_s = time.monotonic() - t0
        at_from = rss_mb()  # the whole plan is built before the first event
    digest = bounded.digest
    cut = bounded.cut
    return {
        "kind": kind, "events_handed": handed, "planned_events": bounded.plan.planned_events,
        "cut_operations": cut.cut_operations, "digest": digest,
        "cpu_s": round(_cpu_s() - cpu0, 2), "wall_s": round(time.monotonic() - t0, 2),
        "first_action_after_s": round(first_s, 3),
        "rss_before_mb": before, f"rss_at_{FROM_EVENTS}_mb": at_from, "rss_end_mb": rss_mb(),
        "growth_from_100k_mb": round(rss_mb() - (at_from or before), 1), "peak_rss_mb": round(_peak_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--rate", type=float, default=2600.0, help="offered events per second (sets the duration)")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--tree", action="append", default=[], help="a source tree to plan with (repeatable)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.events, args.rate, args.devices)))
        return 0
    report: dict[str, Any] = {
        "command": " ".join(["python", "bench/plan_memory.py", *(argv if argv is not None else sys.argv[1:])]),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()], "trees": {}}
    for tree in args.tree or [str(BENCH.parent)]:
        root = Path(tree).resolve()
        env = {**os.environ, "PYTHONPATH": str(root)}
        out = subprocess.run([sys.executable, str(BENCH / "plan_memory.py"), "--child", "--events", str(args.events),
                              "--rate", str(args.rate), "--devices", str(args.devices)],
                             env=env, cwd=root, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            report["trees"][str(root)] = {"error": out.stderr.strip().splitlines()[-1:] or ["exit"]}
            continue
        report["trees"][str(root)] = json.loads(out.stdout.strip().splitlines()[-1])
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
