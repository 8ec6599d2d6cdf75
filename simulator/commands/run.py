"""`fleetsim run SCENARIO`: run a scenario through Locust against the embedded backend (default) or a target.

Flags override the scenario (defaults < YAML < FLEETSIM_* env < flags). Results go to
results/<UTC timestamp>-<scenario>/; the end-of-run table goes to stdout, the live progress line to stderr.
`duration` is the run's wall time: operations in flight then get `graceful_stop` (default 30 s), the rest is
cut (counted in summary.json extra.cut). With --web the UI stays up after the run until Ctrl-C.
Exit: 0 ok; 1 thresholds breached; 2 bad input; 3 internal error; 4 verdict incomplete/invalid_*
(unless --allow-incomplete); 130 interrupted (partial results still written). The last lines say which and why.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.broker_tls import BROKER_TLS_CHOICES, DEFAULT_BROKER_TLS, choices_help

if TYPE_CHECKING:
    from simulator.telemetry.options import TelemetryOptions

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
    parser.add_argument("--expect-workers", type=int, default=0, metavar="N",
                        help="N workers started elsewhere (`fleetsim worker --master HOST:PORT`, any host) instead "
                             "of --processes on this one (docs/multi-host.md)")
    parser.add_argument("--master-bind", default="127.0.0.1", metavar="HOST[:PORT]",
                        help="where the master listens for workers (default 127.0.0.1, any free port; "
                             "give this host's address and a port for workers on other hosts)")
    parser.add_argument("--worker-wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long the master waits for its workers to connect (default 60)")
    parser.add_argument("--spawn-rate", type=float, default=0.0, help="devices brought online per second")
    parser.add_argument("--web", action="store_true", help="serve the Locust web UI on 127.0.0.1:8089")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"],
                        help="embedded backend broker (auto: mosquitto when on PATH or in an sbin folder)")
    parser.add_argument("--broker-tls", default=DEFAULT_BROKER_TLS, choices=BROKER_TLS_CHOICES,
                        help=f"the embedded backend's broker: {choices_help()}")
    parser.add_argument("--state-dir", default=os.environ.get("FLEETSIM_STATE_DIR", ".fleetsim"),
                        help="CA, credentials cache, backend state (default .fleetsim/)")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    parser.add_argument("--metrics-port", default=os.environ.get("FLEETSIM_METRICS_PORT", ""), metavar="[HOST:]PORT",
                        help="serve live Prometheus metrics on PORT or HOST:PORT (host default 127.0.0.1), "
                             "merged across --processes; env FLEETSIM_METRICS_PORT (docs/telemetry.md)")
    parser.add_argument("--otlp", default=os.environ.get("FLEETSIM_OTLP", ""), metavar="ENDPOINT",
                        help="push the same metrics over OTLP/HTTP, e.g. http://127.0.0.1:4318 (extra 'otlp'); "
                             "env FLEETSIM_OTLP")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="exit 0 on an incomplete verdict (devices never online, part of the plan never offered)")
    parser.add_argument("--until-idle", dest="until_idle", type=float, default=0.0, metavar="S",
                        help="mode responder/campaign: end the run once no OTARequest was in flight for S "
                             "seconds after the first one (or at duration, whichever is first)")


def run(args: argparse.Namespace) -> int:
    """The composition root of `fleetsim run`: the RunSpec, resolved once (defaults < YAML < FLEETSIM_* env <
    flags), played by the Locust driver."""
    from simulator.errors import UsageError
    from simulator.run.spec import RunSettings, RunSpec
    from simulator.scenario.loader import load_scenario

    if args.processes < 1:
        raise UsageError(f"--processes: must be at least 1, got {args.processes}")
    if args.until_idle < 0:
        raise UsageError(f"--until-idle: must be >= 0 seconds, got {args.until_idle:g}")
    from simulator.run.addresses import parse_bind

    master_bind, master_port = parse_bind(str(args.master_bind))
    if args.expect_workers < 0 or (args.expect_workers and args.processes > 1):
        raise UsageError("--expect-workers: a count >= 1, and not with --processes (workers are local or remote)")
    if not args.worker_wait > 0:
        raise UsageError(f"--worker-wait: must be > 0 seconds, got {args.worker_wait:g}")
    overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key, None) is not None}
    scenario = load_scenario(args.scenario, overrides, env=dict(os.environ))
    from simulator.telemetry.options import TelemetryOptions

    telemetry = TelemetryOptions(metrics_listen=str(args.metrics_port), otlp_endpoint=str(args.otlp))
    check_telemetry(telemetry)
    from simulator.scenario.load_notes import idle_devices_note

    note = idle_devices_note(scenario)  # a bigger fleet is not more load by itself: say so before the run
    if note:
        print(f"fleetsim: {note}", file=sys.stderr, flush=True)
    settings = RunSettings(results_root=Path(args.results), processes=args.expect_workers or args.processes,
                           master_bind=master_bind, master_port=master_port,
                           external_workers=args.expect_workers > 0, worker_wait_s=args.worker_wait,
                           spawn_rate=args.spawn_rate,
                           web=args.web, web_port=args.web_port, quiet=args.quiet, state_dir=Path(args.state_dir),
                           broker=args.broker, broker_tls=args.broker_tls,
                           engine="fleetsim run", telemetry=telemetry,
                           allow_incomplete=args.allow_incomplete, until_idle_s=args.until_idle)
    from simulator.locust_adapter.runner import LocustDriver
    from simulator.run.execute import execute

    driver = LocustDriver()
    result = execute(RunSpec(scenario=scenario, settings=settings), driver, sys.stdout)
    sys.stdout.flush()
    driver.linger()  # --web: the UI stays up after the results are written, until Ctrl-C
    return result.exit_code


def check_telemetry(options: TelemetryOptions) -> None:
    """Bad --metrics-port / --otlp values are refused before the backend starts (one line, exit 2)."""
    from simulator.telemetry.otlp import otlp_metrics_url
    from simulator.telemetry.prometheus import parse_listen

    if options.metrics_listen:
        parse_listen(options.metrics_listen)
    if options.otlp_endpoint:
        otlp_metrics_url(options.otlp_endpoint)
