"""`fleetsim replay`: record a run (or import an AppEngine export) as a replay file, or play one back.

    fleetsim replay --record RUN_DIR -o FILE [--scenario SCENARIO]   # a run's events.sent.csv -> FILE
    fleetsim replay --import-appengine ID=EXPORT.json ... -o FILE      # AppEngine OTAEvent exports -> FILE
    fleetsim replay FILE [--speed X] [--transport lean|sdk] [--target embedded|FILE] [--devices-map MAP]

Playing writes results/<UTC timestamp>-replay-<name>/ like a run. Format: simulator/replay/replay_file.py.
Exit: 0 ok; 2 bad input; 130 interrupted (partial results still written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "record a run as a replay file, import an AppEngine export, or replay a recorded OTAEvent stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="replay file to play (JSON lines)")
    parser.add_argument(
        "--record", metavar="RUN_DIR", help="write the replay file of a finished run (needs -o)"
    )
    parser.add_argument(
        "--scenario", help="with --record: the run's scenario, for exact messages and reboots"
    )
    parser.add_argument(
        "--import-appengine",
        dest="import_appengine",
        nargs="+",
        metavar="ID=EXPORT",
        help="AppEngine OTAEvent export(s) as DEVICE_ID=FILE (or FILE named <id>.json); needs -o",
    )
    parser.add_argument("--realm", default="fleetsim", help="with --import-appengine: the realm to record")
    parser.add_argument("-o", "--output", help="replay file to write (--record, --import-appengine)")
    parser.add_argument("--speed", type=float, default=1.0, help="play X times faster (gaps divided by X)")
    parser.add_argument("--transport", default="lean", help="lean (default) or sdk")
    parser.add_argument("--target", default="embedded", help="'embedded' (default) or a target file")
    parser.add_argument(
        "--devices-map", dest="devices_map", help="recorded id -> target id: a JSON object or `old=new` lines"
    )
    parser.add_argument("--name", help="results name (default: replay-<file stem>)")
    parser.add_argument("--results", default=os.environ.get("FLEETSIM_RESULTS", "results"))
    parser.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"])
    parser.add_argument("--state-dir", default=os.environ.get("FLEETSIM_STATE_DIR", ".fleetsim"))
    parser.add_argument("--quiet", action="store_true", help="no live progress line")


def _write(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError
    from simulator.replay.replay_file import ReplayEvent, write_replay

    if not args.output:
        raise UsageError("-o FILE is required with --record / --import-appengine")
    if args.record:
        from simulator.replay.recorder import record_run

        header, entries = record_run(args.record, args.scenario)
    else:
        from simulator.replay.appengine_import import import_exports, parse_export_specs

        header, entries = import_exports(parse_export_specs(args.import_appengine), realm=args.realm)
    path = write_replay(args.output, header, entries)
    events = sum(1 for e in entries if isinstance(e, ReplayEvent))
    devices = len({e.device for e in entries})
    print(f"wrote {path}: {events} events, {len(entries) - events} reboots/properties, {devices} devices")
    return 0


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError

    if args.record and args.import_appengine:
        raise UsageError("--record and --import-appengine are exclusive")
    if args.record or args.import_appengine:
        return _write(args)
    if not args.file:
        raise UsageError(
            "name a replay file to play, or --record RUN_DIR / --import-appengine ID=FILE with -o"
        )
    from simulator.replay.player import build_replay_plan, read_devices_map, replay_scenario
    from simulator.replay.replay_file import read_replay
    from simulator.run.spec import ReplaySource, RunSettings, RunSpec

    header, entries = read_replay(args.file)
    mapping = read_devices_map(args.devices_map) if args.devices_map else None
    plan = build_replay_plan(entries, speed=args.speed, devices_map=mapping, source=args.file)
    name = args.name or f"replay-{Path(args.file).stem}"
    scenario = replay_scenario(header, plan, name=name, transport=args.transport, target=args.target)
    replay = ReplaySource(plan=plan, file=args.file, speed=args.speed, source=header.source,
                          devices_map=args.devices_map or "")
    settings = RunSettings(results_root=Path(args.results), state_dir=Path(args.state_dir), broker=args.broker,
                           quiet=args.quiet, engine="fleetsim replay")
    # The replay driver is the Locust driver playing the recorded plan (the spec's plan recipe is the file).
    from simulator.locust_adapter.runner import LocustDriver
    from simulator.run.execute import execute

    return execute(RunSpec(scenario=scenario, settings=settings, replay=replay), LocustDriver(), sys.stdout).exit_code
