"""The plans of the shipped scenarios, of the campaign benchmark's scenario and of every lifecycle path, pinned
to what commit 7ee1af5 (before issue 16's planner cuts) generates: a faster planner must plan the same bytes.

Two figures per scenario:
- `plan_digest` (simulator.run.plans): what every process compares at run time (ids, online offsets, the cut
  and every action's fields, in step order);
- `full`: sha256 of the repr of every step of the bounded plan (the run's cut applied) -- operations (uuid,
  start, end, outcome, mix name), actions (kind, value dict with its key order, occurrence, duration), the
  cut flags and the dropped arrivals -- so what the digest leaves out is pinned too.

How the values were computed (2026-12-07): `git archive 7ee1af5 simulator | tar -x -C /tmp/base_tree`, then,
from a directory outside the repository (so that the current directory does not shadow the base's simulator/),
`PYTHONPATH=/tmp/base_tree:$REPO python -c "from tests.unit.plan.test_plan_pinned import print_pins;
print_pins()"`: the simulator of 7ee1af5, this test module and bench/ of the working tree.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.run.plans import bound_plan, plan_digest, plan_for
from simulator.scenario.loader import load_scenario
from simulator.scenario.model import Distribution, LifecycleMixEntry, RandomLifecycle, Scenario

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = sorted(ROOT.joinpath("scenarios").glob("*.yaml"))

# Every outcome, failed attempts with every code, double updates, a slow shutdown (Rebooting re-sent every
# 30 s), an acknowledge delay and a coarser progress step; a streaming entry beside it.
_EVERY_PATH = RandomLifecycle(
    outcomes=(("success", 0.2), ("download_exhausted", 0.1), ("invalid_base_image", 0.1), ("io_error", 0.1),
              ("reboot_failure", 0.1), ("rollback", 0.1), ("cancel", 0.15), ("late_cancel", 0.15)),
    download_duration=Distribution("lognormal", median=20.0, sigma=0.5),
    deploy_duration=Distribution("uniform", low=5.0, high=20.0),
    reboot_duration=Distribution("exponential", mean=10.0),
    download_error_probability=0.35,
    error_codes=(("NetworkError", 0.5), ("IOError", 0.25), ("InternalError", 0.25)),
    double_update_probability=0.3,
    acknowledge_delay=Distribution("uniform", low=0.0, high=2.0),
    shutdown_delay=Distribution("uniform", low=0.0, high=70.0),
)
_STREAMING = replace(_EVERY_PATH, streaming=True, progress_step=20, shutdown_delay=Distribution("fixed", value=0.0))


def _every_path() -> Scenario:
    base = load_scenario(str(ROOT / "scenarios" / "error-storm.yaml"), {})
    return replace(base, name="every-path", seed=16, duration=10.0, graceful_stop=1.0,
                   lifecycle=(LifecycleMixEntry(weight=3.0, random=_EVERY_PATH, name="random"),
                              LifecycleMixEntry(weight=1.0, random=_STREAMING, name="streaming")))


def _cases() -> dict[str, Scenario]:
    from bench.campaign_capacity import campaign_scenario

    cases = {path.name: load_scenario(str(path), {}) for path in SCENARIOS}
    cases["campaign_scenario(1000, 40, 2000)"] = campaign_scenario(1000, 40.0, 2000)
    cases["every-path"] = _every_path()
    return cases


def pins(scenario: Scenario) -> tuple[str, str]:
    """(plan_digest of the plan, sha256 of every step of the bounded plan) of `scenario`."""
    digest = plan_digest(plan_for(scenario))
    bounded = bound_plan(plan_for(scenario), scenario.duration, scenario.graceful_stop)
    h = hashlib.sha256()
    for step in bounded.plan.steps():
        h.update(repr(step).encode())
    return digest, h.hexdigest()[:32]


def print_pins() -> None:
    """The PINNED table of the tree on the path (see the module docstring)."""
    for name, scenario in _cases().items():
        print(f"    {name!r}: {pins(scenario)!r},")


PINNED: dict[str, tuple[str, str]] = {
    "campaign.yaml": ("07630e775c68359e", "13d4763696b1f3d8e3dfe664c86725a1"),
    "cancel.yaml": ("6c9533a6f11494c4", "1c3eb8bc58df09b65933a4e69c601cfd"),
    "ci-regression.yaml": ("613d7be606c10928", "1dd6ef08a8d23ef2e24c15afec38b07d"),
    "error-storm.yaml": ("9392e6dd618ff6f4", "a911674ea8772da6ad00f13e25a7f127"),
    "happy-path.yaml": ("cb1739f8766818bf", "61f1ad9e63fd9067258b68d7945ede31"),
    "quickstart.yaml": ("94851df46963e22e", "53424f9ec1daae4bca7de97a1e6877a4"),
    "responder.yaml": ("b6a70139c5eb3921", "51c96055e526af068f546597b467acbe"),
    "rollback.yaml": ("4bbadf55e2d848fd", "2fcbef372758c5cd30dd928fa77074d7"),
    "soak.yaml": ("3233d45d5d054b77", "5cd77180fac4511ee9bd6ac56291d88f"),
    "campaign_scenario(1000, 40, 2000)": ("edb1b706355dfe31", "9cc8f5fa410377e8d173efcf186980de"),
    "every-path": ("77be9aee10a458f0", "14dbf4a3e6e8ff816ad6de675de08725"),
}

CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_plan_is_the_one_the_base_commit_generated(name: str) -> None:
    assert pins(CASES[name]) == PINNED[name]


def test_every_case_is_pinned() -> None:
    assert sorted(PINNED) == sorted(CASES)
