"""Locust's "spawn rate is very high" warning appears only for a spawn rate the user chose (issue 15 item 9)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from simulator.locust_adapter.spawn_warning import spawn_rate_chosen_by_user

LOCUST_WARNING = ("Your selected spawn rate is very high (>100), and this is known to sometimes cause issues. "
                  "Do you really need to ramp up that fast?")


def test_locust_still_words_the_warning_this_way() -> None:
    # Located without importing Locust (its import patches the standard library for gevent).
    spec = importlib.util.find_spec("locust")
    assert spec is not None and spec.submodule_search_locations
    runners = Path(next(iter(spec.submodule_search_locations))) / "runners.py"
    assert "spawn rate is very high" in runners.read_text()


def test_dropped_for_fleetsims_own_rate_kept_for_the_users(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("locust.runners")
    caplog.set_level(logging.INFO, logger="locust.runners")
    try:
        spawn_rate_chosen_by_user(False)
        logger.warning(LOCUST_WARNING)
        logger.info("Ramping to 500 users at a rate of 500.00 per second")  # other messages pass
        assert [r.getMessage() for r in caplog.records] == ["Ramping to 500 users at a rate of 500.00 per second"]
        caplog.clear()
        spawn_rate_chosen_by_user(True)
        logger.warning(LOCUST_WARNING)
        assert [r.getMessage() for r in caplog.records] == [LOCUST_WARNING]
        assert len([f for f in logger.filters if type(f).__name__ == "SpawnRateWarningFilter"]) == 1
    finally:
        spawn_rate_chosen_by_user(True)
