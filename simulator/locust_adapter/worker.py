"""A worker process: `fleetsim worker --master HOST:PORT` (or `python -m simulator.locust_adapter.worker
HOST:PORT`; a bare PORT means 127.0.0.1). `fleetsim run --processes N` starts N of them on its own host;
`fleetsim run --expect-workers N --master-bind ADDR:PORT` waits for N started on any host (docs/multi-host.md).

The worker reads no scenario file, no settings file and no FLEETSIM_* variable: the master sends the run's
spec as data (`fleetsim_setup`, hooks.py) before the first spawn; the worker builds the same plan from the
spec's recipe and runs its partition.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import sys  # noqa: E402

from locust.env import Environment  # noqa: E402

from simulator.generator.fleet import preload_transports  # noqa: E402
from simulator.locust_adapter.hooks import install  # noqa: E402
from simulator.locust_adapter.users import DeviceUser  # noqa: E402
from simulator.run.addresses import parse_master  # noqa: E402


def run_worker(host: str, port: int) -> int:
    """Connect to the master at host:port, play what it sends, return when it quits."""
    logging.basicConfig(level=logging.WARNING, format="worker %(process)d %(levelname)s %(message)s")
    # Before connecting: no heartbeat to keep yet (fleet.preload_transports says why).
    preload_transports()
    env = Environment(user_classes=[DeviceUser])
    runner = env.create_worker_runner(host, port)
    install(env, None)
    runner.greenlet.join()
    return 0


def main(argv: list[str]) -> int:
    try:
        host, port = parse_master(argv[0] if argv else "")
    except ValueError as exc:
        print(f"fleetsim worker: {exc}", file=sys.stderr)
        return 2
    return run_worker(host, port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
