"""`fleetsim backend`: the embedded backend's own app (simulator.backend.app), run in the foreground."""

from __future__ import annotations

import argparse

from simulator.backend import app

__all__ = ["HELP", "add_arguments", "run"]

HELP = app.HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    app.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return app.run(args)
