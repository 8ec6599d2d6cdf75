"""`fleetsim validate FILE...`: load and check scenario files without running anything.

Exit 0 printing `ok: FILE` for each file when all are valid; otherwise ConfigErrors with every problem of
every file, which cli.py prints as `file:line: field: message` lines on stderr with exit code 2.
"""

from __future__ import annotations

import argparse

from simulator.errors import ConfigError, ConfigErrors
from simulator.scenario.loader import load_scenario

__all__ = ["HELP", "add_arguments", "run"]

HELP = "check scenario files (YAML) and report every problem as file:line: field: message"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML files")


def run(args: argparse.Namespace) -> int:
    errors: list[ConfigError] = []
    for path in args.files:
        try:
            load_scenario(path)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        print(f"ok: {path}")
    if errors:
        raise ConfigErrors(errors)
    return 0
