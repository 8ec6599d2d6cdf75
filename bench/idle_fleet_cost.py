"""What an idle connected fleet costs the generator per second (issue 16: the fixed cost of a playing fleet).

    python bench/idle_fleet_cost.py                                   # 1,000 devices, 3 rounds, 20 s windows
    python bench/idle_fleet_cost.py --baseline-root /tmp/base         # A/B against another tree's simulator/
    python bench/idle_fleet_cost.py --profile                         # + one sampled window per tree (by cause)

The product path, as bench/campaign_capacity.py plays it: a gevent-patched child plays the reboot campaign
(simulator.run.gevent_driver.play_fleet with the run's MetricsRecorder and HealthMonitor, lean transport,
mutual TLS) against one embedded backend started here, but with a handful of operations that are over within
a few seconds and a long graceful tail: the devices stay connected and idle until the run's end. A helper
greenlet (play_fleet's `during`) reads the process's CPU (getrusage: user + system) and its context switches
at the start and the end of a window inside that tail (SETTLE_S after the plan's last arrival), so onboarding,
the operations, and the fleet's stop are all outside it. What is left is what the generator does every second
with nothing to publish: timers, the health monitor, the feeder, the scheduler's and the I/O loop's wake-ups,
the keep-alive housekeeping. Not the keep-alive traffic itself: with 1,000 devices the window ends less than
60 s after the devices connected, so no PINGREQ is due in it (paho's 60 s keep-alive: a PINGREQ per device
per minute is real traffic, stays, and costs both trees the same).

Each round plays each tree once (alternating which goes first); medians over the rounds. `--profile` adds one
window per tree sampled by bench/cpu_sampler (Python stacks by CPU time), reported as the share of samples
under each greenlet's root function and under each leaf function. Read it with care: in an idle process most
SIGPROF expirations never reach the Python handler (a gevent-patched process idling with 1,000 housekeeping
members and the health monitor, sampled every 1 ms of CPU: 2 samples for 29 ms of CPU at 517f451, 0 for 19 ms
after the idle tick of lean_loop), so few samples and a skew towards what runs Python right after a wake-up.
Call counts per second (cProfile around the window) are the surer breakdown there. Prints and saves
bench/results/idle_fleet_cost.json.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--child" in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import os
import resource
import statistics
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--child" in sys.argv and "--simulator-root" in sys.argv:  # the A/B baseline: another tree's simulator/
    sys.path.insert(0, sys.argv[sys.argv.index("--simulator-root") + 1])

from bench.campaign_capacity import REALM, campaign_ids, campaign_scenario
from bench.common import emit, host_info, provision, raise_fd_limit, run_child, save_result, start_backend
from bench.fleet_runs import embedded_target

__all__ = ["main"]

OPERATIONS = 10  # a few operations, so the run is the campaign's (its plan, its reconnect path once)
RATE = 10.0  # operations/s: the plan's arrivals end 1 s after the start
SETTLE_S = 6.0  # after the last arrival: an operation takes ~2.5 s (download 1, deploy 0.5, reboot 0.5 + reconnect)
TAIL_MARGIN_S = 3.0  # between the window's end and the run's end
TOP = 15  # rows of each profile table


def _usage() -> tuple[float, int, int]:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime, u.ru_nvcsw, u.ru_nivcsw


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import gevent

    from simulator.clock import MonotonicClock
    from simulator.generator.fleet import FleetCallbacks
    from simulator.generator.health_monitor import HealthMonitor
    from simulator.metrics.recorder import MetricsRecorder
    from simulator.run.gevent_driver import play_fleet
    from simulator.run.plans import bound_plan, plan_for
    from simulator.run.recording import recorder_callbacks

    raise_fd_limit(spec["devices"] + 500)
    window_s = float(spec["window_s"])
    scenario = campaign_scenario(spec["devices"], RATE, OPERATIONS)
    scenario = replace(scenario, graceful_stop=SETTLE_S + window_s + TAIL_MARGIN_S)
    bounded = bound_plan(plan_for(scenario), scenario.duration, scenario.graceful_stop)
    clock = MonotonicClock()
    recorder = MetricsRecorder(clock)
    monitor = HealthMonitor(clock)
    base = recorder_callbacks(recorder)
    records = [0]

    def on_record(rec: Any) -> None:
        records[0] += 1
        base.on_record(rec)

    callbacks = FleetCallbacks(on_record=on_record, on_onboarding=base.on_onboarding, on_online=base.on_online,
                               on_begin=monitor.start)
    window: dict[str, Any] = {}

    def during(fleet: Any) -> None:
        import time

        gevent.sleep(max(0.0, fleet.run_start + scenario.duration + SETTLE_S - time.monotonic()))
        window["busy_devices"] = sum(1 for d in fleet.devices.values() if d.busy)
        counts: Counter[str] | None = None
        if spec.get("profile"):
            from bench.cpu_sampler import start

            counts = start()
        cpu0, vol0, invol0 = _usage()
        wall0 = time.monotonic()
        gevent.sleep(window_s)
        cpu1, vol1, invol1 = _usage()
        wall1 = time.monotonic()
        if counts is not None:
            from bench.cpu_sampler import stop

            stop()
            window["profile"] = _profile(counts)
        wall = wall1 - wall0
        window.update(cpu_ms_per_s=round((cpu1 - cpu0) / wall * 1000, 3), wall_s=round(wall, 3),
                      voluntary_switches_per_s=round((vol1 - vol0) / wall, 1),
                      involuntary_switches_per_s=round((invol1 - invol0) / wall, 1))

    played = play_fleet(scenario, bounded.plan, embedded_target(spec["info"], Path(spec["credentials_dir"])),
                        end_s=bounded.end_s, callbacks=callbacks, during=during)
    monitor.stop()
    if "cpu_ms_per_s" not in window:
        return {"error": "the window did not end before the run", "window": window}
    return {"devices": spec["devices"], "online": played.fleet.online, "failed": len(played.fleet.failed),
            "records": records[0], **window, "load_avg_1m": round(os.getloadavg()[0], 2)}


def _profile(counts: Counter[str]) -> dict[str, Any]:
    """Shares of the window's samples by the greenlet's root function and by the leaf function."""
    total = sum(counts.values())
    roots: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for stack, n in counts.items():
        frames = stack.split(";")
        root = next((f for f in frames if not f.startswith(("Greenlet.run", "<module>", "run (", "_run_child"))),
                    frames[0])
        roots[root] += n
        leaves[frames[-1]] += n
    return {"samples": total,
            "by_root_pct": {k: round(100 * v / total, 1) for k, v in roots.most_common(TOP)} if total else {},
            "by_leaf_pct": {k: round(100 * v / total, 1) for k, v in leaves.most_common(TOP)} if total else {}}


def _run(info: dict[str, Any], creds: str, devices: int, window_s: float, root: str, profile: bool) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"info": info, "credentials_dir": creds, "devices": devices, "window_s": window_s,
                   "profile": profile}, f)
    argv = [str(Path(__file__).resolve()), "--child", f.name]
    if root:
        argv += ["--simulator-root", root]
    out = run_child(argv, timeout_s=300 + window_s)
    os.unlink(f.name)
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return round(statistics.median(values), 3) if values else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--window", type=float, default=20.0, help="seconds of idle play measured per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-root", default="", help="a directory holding another version's simulator/")
    ap.add_argument("--profile", action="store_true", help="one more window per tree, sampled by cause")
    ap.add_argument("--out", default="idle_fleet_cost")
    args = ap.parse_args(argv)
    raise_fd_limit(args.devices + 500)
    trees = {"this": ""} if not args.baseline_root else {"baseline": args.baseline_root, "this": ""}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    profiles: dict[str, Any] = {}
    backend = start_backend(realm=REALM, collector=False)
    try:
        ids = campaign_ids(args.devices)
        provision(backend.info, ids)
        info = {**backend.info.__dict__}
        creds = str(embedded_target(info).credentials_dir)
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                out = _run(info, creds, args.devices, args.window, trees[name], profile=False)
                out["tree"], out["round"] = name, r
                print(json.dumps(out), file=sys.stderr, flush=True)
                runs[name].append(out)
        if args.profile:
            for name in trees:
                out = _run(info, creds, args.devices, args.window, trees[name], profile=True)
                print(json.dumps(out), file=sys.stderr, flush=True)
                profiles[name] = out
    finally:
        backend.stop()
    doc: dict[str, Any] = {"host": host_info(), "devices": args.devices, "window_s": args.window,
                           "rounds": args.rounds, "baseline_root": args.baseline_root, "runs": runs,
                           "medians": {name: {"n": sum(1 for r in rs if "cpu_ms_per_s" in r),
                                              "cpu_ms_per_s": _median(rs, "cpu_ms_per_s"),
                                              "voluntary_switches_per_s": _median(rs, "voluntary_switches_per_s")}
                                       for name, rs in runs.items()}}
    if profiles:
        doc["profiles"] = profiles
    path = save_result(args.out, doc)
    print(json.dumps(doc["medians"], indent=2))
    print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        emit(child(json.loads(Path(sys.argv[sys.argv.index("--child") + 1]).read_text())))
        raise SystemExit(0)
    raise SystemExit(main())
