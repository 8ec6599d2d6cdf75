"""A worker process of `fleetsim run --processes N`: `python -m simulator.locust_adapter.worker MASTER_PORT`.

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

from simulator.locust_adapter.hooks import install  # noqa: E402
from simulator.locust_adapter.users import DeviceUser  # noqa: E402


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="worker %(process)d %(levelname)s %(message)s")
    master_port = int(argv[0])
    env = Environment(user_classes=[DeviceUser])
    runner = env.create_worker_runner("127.0.0.1", master_port)
    install(env, None)
    runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
