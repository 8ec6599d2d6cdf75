"""`fleetsim report RUN`: rebuild report.html from a run directory's files (summary.json, timeseries.csv,
latency.hlog), e.g. after a newer fleetsim improved the report, or for a run copied from a CI job."""

from __future__ import annotations

import argparse
from pathlib import Path

from simulator.errors import UsageError
from simulator.outputs.html import rebuild_report
from simulator.outputs.summary import read_summary
from simulator.outputs.terminal import format_summary

__all__ = ["HELP", "add_arguments", "run"]

HELP = "rebuild report.html of a run directory (and print its summary table)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory, e.g. results/20260101T120000Z-quickstart")
    parser.add_argument("--quiet", "-q", action="store_true", help="do not print the summary table")


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory (expected a run directory under results/)")
    path = rebuild_report(run_dir)
    if not args.quiet:
        print(format_summary(read_summary(run_dir)), end="")
    print(f"report: {path}")
    return 0
