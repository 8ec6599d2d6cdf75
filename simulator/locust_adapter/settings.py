"""What a fleetsim run inside Locust needs to know, whichever way it was started.

`fleetsim run` builds `RunSettings` itself and hands them to `install()`; plain `locust -f locustfile.py`
builds them from the parsed fleetsim options (options.py) at `init`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.generator.target import TargetInfo, target_from_backend_info
from simulator.scenario.model import Scenario

__all__ = ["RunSettings", "settings_from_options"]


@dataclass(frozen=True)
class RunSettings:
    scenario: Scenario
    target: TargetInfo
    results_root: Path
    worker_count: int = 1  # generator processes sharing the fleet (1 = local run)
    write_results: bool = True  # plain locust: the master/local process writes results at quit
    progress: bool = False  # `fleetsim run` prints its own progress line


def settings_from_options(options: Any, num_users: int | None) -> RunSettings:
    """RunSettings from Locust's parsed options (plain `locust -f locustfile.py`)."""
    from simulator.scenario.loader import load_scenario

    overrides: dict[str, object] = {}
    if options.fleetsim_seed is not None:
        overrides["seed"] = options.fleetsim_seed
    devices = options.fleetsim_devices or num_users
    if devices:
        overrides["devices"] = devices
    if options.fleetsim_transport:
        overrides["transport"] = options.fleetsim_transport
    scenario = load_scenario(options.fleetsim_scenario, overrides)
    state_dir = Path(os.environ.get("FLEETSIM_STATE_DIR", ".fleetsim"))
    if options.fleetsim_target_file:
        from simulator.generator.target_file import load_target_file

        target = load_target_file(Path(options.fleetsim_target_file), state_dir)
    else:
        target = target_from_backend_info(Path(options.fleetsim_backend_info), state_dir)
    if target.realm != scenario.realm:
        scenario = replace(scenario, realm=target.realm)
    return RunSettings(scenario=scenario, target=target, results_root=Path(options.fleetsim_results),
                       worker_count=max(1, options.fleetsim_workers or 1))
