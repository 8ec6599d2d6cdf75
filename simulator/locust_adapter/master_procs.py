"""The master's worker processes: its listening runner, waiting for its workers, ending local ones.

Kept apart from the driver (simulator.locust_adapter.runner), which plays the run; these are the process chores
around it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Collection
from typing import Any

import gevent
from locust.env import Environment

__all__ = ["await_workers", "end_worker", "master_runner"]


def master_runner(env: Environment, bind: str, port: int) -> Any:
    """A Locust master on bind:port; an address this host does not have, or a port in use, is one line (exit
    2) rather than Locust's traceback."""
    from simulator.errors import UsageError

    try:
        return env.create_master_runner(bind or "*", port)
    except Exception as exc:  # zmq.ZMQError / OSError: the bind failed
        raise UsageError(f"--master-bind {bind}:{port}: cannot listen there: {exc}") from None


def await_workers(runner: Any, count: int, procs: list[subprocess.Popen[bytes]], wait_s: float,
                  ready: Collection[str]) -> None:
    """Until `count` workers are connected and ready (`ready`: the client ids that said fleetsim_ready, filled
    by the master's handler; hooks.py says why connected is not enough), bounded by `wait_s`; a local worker
    that exits fails at once."""
    deadline = time.monotonic() + wait_s
    while runner.worker_count < count or len(ready) < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            from simulator.errors import FleetsimError

            raise FleetsimError(f"only {runner.worker_count} of {count} workers connected ({len(ready)} ready) "
                                f"within {wait_s:g} s")
        gevent.sleep(0.05)


def end_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
