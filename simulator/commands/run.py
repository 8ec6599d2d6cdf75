"""`fleetsim run SCENARIO`: run a scenario through Locust against the embedded backend (default) or a target.

Flags override the scenario (defaults < YAML < FLEETSIM_* env < flags). Results go to
results/<UTC timestamp>-<scenario>/; the end-of-run table goes to stdout, the live progress line to stderr.
Exit: 0 ok; 1 thresholds breached; 2 bad input; 130 interrupted (partial results still written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "run a scenario (Locust engine; the embedded backend unless --target names a target file)"

OVERRIDES = ("devices", "rate", "duration", "seed", "target", "transport", "time_scale")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("--devices", help="fleet size")
    parser.add_argument("--rate", help="OTA operations per second (arrival rate)")
    parser.add_argument("--duration", help="run length, e.g. 30s, 5m")
    parser.add_argument("--seed", help="random seed (same seed + scenario => same event plan)")
    parser.add_argument("--time-scale", dest="time_scale", help="device seconds per wall second")
    parser.add_argument("--target", help="'embedded' (default) or a target file for a real Astarte")
    parser.add_argument("--transport", help="lean (default, scales) or sdk (the unmodified SDK, <= 300 devices)")
    parser.add_argument("--results", default=os.environ.get("FLEETSIM_RESULTS", "results"),
                        help="results root (default: results/)")
    parser.add_argument("--processes", type=int, default=1, help="generator processes (master + N workers)")
    parser.add_argument("--spawn-rate", type=float, default=0.0, help="devices brought online per second")
    parser.add_argument("--web", action="store_true", help="serve the Locust web UI on 127.0.0.1:8089")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"],
                        help="embedded backend broker (auto: mosquitto when on PATH)")
    parser.add_argument("--state-dir", default=os.environ.get("FLEETSIM_STATE_DIR", ".fleetsim"),
                        help="CA, credentials cache, backend state (default .fleetsim/)")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    parser.add_argument("--until-idle", dest="until_idle", type=float, default=0.0, metavar="S",
                        help="mode responder/campaign: end the run once no OTARequest was in flight for S "
                             "seconds after the first one (or at duration, whichever is first)")


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError
    from simulator.scenario.loader import load_scenario

    if args.processes < 1:
        raise UsageError(f"--processes: must be at least 1, got {args.processes}")
    if args.until_idle < 0:
        raise UsageError(f"--until-idle: must be >= 0 seconds, got {args.until_idle:g}")
    overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key, None) is not None}
    scenario = load_scenario(args.scenario, overrides, env=dict(os.environ))
    from simulator.locust_adapter.session import run_session

    return run_session(scenario, scenario_path=args.scenario, overrides=overrides,
                       results_root=Path(args.results), state_dir=Path(args.state_dir), processes=args.processes,
                       spawn_rate=args.spawn_rate, web=args.web, web_port=args.web_port, broker=args.broker,
                       quiet=args.quiet, out=sys.stdout, until_idle_s=args.until_idle)
