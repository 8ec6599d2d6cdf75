"""Every scenario shipped in scenarios/ is valid and documented; all but soak run in well under a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.scenario.loader import load_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"
EXPECTED = {"quickstart", "happy-path", "error-storm", "rollback", "cancel", "campaign", "ci-regression",
            "soak"}


def test_the_expected_scenarios_are_shipped() -> None:
    assert {p.stem for p in SCENARIOS.glob("*.yaml")} >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_scenario_is_valid(name: str) -> None:
    path = SCENARIOS / f"{name}.yaml"
    scenario = load_scenario(path)
    assert scenario.name == name
    assert path.read_text().startswith("# "), "each scenario starts with a comment saying what it shows"
    if name == "soak":
        assert scenario.duration >= 3600 and scenario.arrival.rate <= 0.1
    else:
        assert scenario.duration <= 40


def test_quickstart_is_what_the_readme_promises() -> None:
    s = load_scenario(SCENARIOS / "quickstart.yaml")
    assert (s.fleet.devices, s.time_scale, s.duration, s.transport, s.target) == (20, 60.0, 30.0, "lean",
                                                                                  "embedded")
    random = s.lifecycle[0].random
    assert random is not None and dict(random.outcomes)["success"] > 0.5
    assert random.download_error_probability > 0


def test_scenario_shapes() -> None:
    def outcomes(name: str) -> dict[str, float]:
        random = load_scenario(SCENARIOS / f"{name}.yaml").lifecycle[0].random
        assert random is not None
        return dict(random.outcomes)

    happy = load_scenario(SCENARIOS / "happy-path.yaml").lifecycle[0].random
    assert happy is not None and dict(happy.outcomes) == {"success": 1.0}
    assert happy.download_error_probability == 0 and happy.double_update_probability == 0
    storm = load_scenario(SCENARIOS / "error-storm.yaml").lifecycle[0].random
    assert storm is not None and storm.download_error_probability > 0 and storm.double_update_probability > 0
    assert {"download_exhausted", "invalid_base_image", "io_error"} <= set(dict(storm.outcomes))
    assert max(outcomes("rollback"), key=outcomes("rollback").__getitem__) == "rollback"
    assert {"cancel", "late_cancel"} <= set(outcomes("cancel"))
    assert load_scenario(SCENARIOS / "campaign.yaml").mode == "campaign"
    assert load_scenario(SCENARIOS / "ci-regression.yaml").thresholds
