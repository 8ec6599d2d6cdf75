"""A worker process of `fleetsim run --processes N`: `python -m simulator.locust_adapter.worker SETTINGS MASTER_PORT`.

SETTINGS is a JSON file written by the runner: {"scenario": path, "overrides": {...}, "target": TargetInfo JSON,
"results_root": dir, "worker_count": N}. The worker builds the same plan from the seed and runs its partition.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from locust.env import Environment  # noqa: E402

from simulator.generator.target import TargetInfo  # noqa: E402
from simulator.locust_adapter.hooks import install  # noqa: E402
from simulator.locust_adapter.settings import RunSettings  # noqa: E402
from simulator.locust_adapter.users import DeviceUser  # noqa: E402
from simulator.scenario.loader import load_scenario  # noqa: E402


def settings_from_file(path: Path) -> RunSettings:
    doc = json.loads(path.read_text())
    scenario = load_scenario(doc["scenario"], doc.get("overrides") or {})
    return RunSettings(scenario=scenario, target=TargetInfo.from_json(doc["target"]),
                       results_root=Path(doc["results_root"]), worker_count=int(doc["worker_count"]),
                       write_results=False)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="worker %(process)d %(levelname)s %(message)s")
    settings = settings_from_file(Path(argv[0]))
    master_port = int(argv[1])
    env = Environment(user_classes=[DeviceUser])
    runner = env.create_worker_runner("127.0.0.1", master_port)
    install(env, settings)
    runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
