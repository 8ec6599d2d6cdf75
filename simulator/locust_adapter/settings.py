"""The composition root of plain `locust -f locustfile.py`: the run's spec from the parsed fleetsim options.

(`fleetsim run` and `fleetsim replay` build their RunSpec in simulator/commands; workers receive the master's.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simulator.generator.target import target_from_backend_info
from simulator.run.spec import RunSettings, RunSpec

__all__ = ["spec_from_options"]


def spec_from_options(options: Any, num_users: int | None) -> RunSpec:
    """RunSpec from Locust's parsed options (each also a FLEETSIM_* variable, read by Locust itself), with the
    FLEETSIM_* scenario overrides of the environment as `fleetsim run` applies them; resolved once, here."""
    from simulator.scenario.loader import load_scenario

    overrides: dict[str, object] = {}
    if options.fleetsim_seed is not None:
        overrides["seed"] = options.fleetsim_seed
    devices = options.fleetsim_devices or num_users
    if devices:
        overrides["devices"] = devices
    if options.fleetsim_transport:
        overrides["transport"] = options.fleetsim_transport
    scenario = load_scenario(options.fleetsim_scenario, overrides, env=dict(os.environ))
    state_dir = Path(os.environ.get("FLEETSIM_STATE_DIR", ".fleetsim"))
    if options.fleetsim_target_file:
        from simulator.generator.target_file import load_target_file

        target = load_target_file(Path(options.fleetsim_target_file), state_dir)
    else:
        target = target_from_backend_info(Path(options.fleetsim_backend_info), state_dir)
    settings = RunSettings(results_root=Path(options.fleetsim_results), state_dir=state_dir,
                           processes=max(1, options.fleetsim_workers or 1), engine="locust -f",
                           allow_incomplete=bool(getattr(options, "fleetsim_allow_incomplete", False)))
    return RunSpec(scenario=scenario, settings=settings).with_target(target)
