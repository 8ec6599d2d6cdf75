"""`fleetsim worker --master HOST:PORT`: a generator worker for a master started elsewhere.

The master is `fleetsim run SCENARIO --expect-workers N --master-bind ADDR:PORT` (docs/multi-host.md). The worker
reads no scenario, settings file or FLEETSIM_* variable: the master sends the resolved run spec (scenario,
target, settings) when it connects, and the worker plays its partition of the plan (device i on worker i % N).
It reaches the backend at the addresses of the master's target (pairing URL, broker URL) and needs the
target's CA file at the same path. It exits when the master quits.
"""

from __future__ import annotations

import argparse

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run a generator worker for a `fleetsim run --expect-workers` master on another host"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, metavar="HOST:PORT",
                        help="the master's address and port, as its --master-bind says (e.g. 10.0.0.5:5557)")


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError
    from simulator.run.addresses import parse_master

    try:
        host, port = parse_master(str(args.master))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from simulator.locust_adapter.worker import run_worker  # after the check: it imports gevent-patched Locust

    return run_worker(host, port)
