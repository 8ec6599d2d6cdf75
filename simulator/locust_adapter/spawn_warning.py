"""Locust's "Your selected spawn rate is very high (>100)" warning, only when the user selected it.

Without -r / --spawn-rate fleetsim picks the rate itself (generator.ramp.default_spawn_rate: the ramp's
steepest stage, else up to 500 devices/s, which the onboarding gate of generator.fleet keeps to 64 handshakes
at once anyway). Locust then warned about a choice the user never made (locust/runners.py `start`), so the
warning is dropped for fleetsim's own rates and kept for a rate the user gave.
"""

from __future__ import annotations

import logging

__all__ = ["SpawnRateWarningFilter", "spawn_rate_chosen_by_user"]

_MESSAGE = "spawn rate is very high"


class SpawnRateWarningFilter(logging.Filter):
    """On Locust's runners logger; `user_chose` says whether the current rate is the user's."""

    def __init__(self) -> None:
        super().__init__()
        self.user_chose = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.user_chose or _MESSAGE not in record.getMessage()


_FILTER = SpawnRateWarningFilter()


def spawn_rate_chosen_by_user(chosen: bool, logger_name: str = "locust.runners") -> SpawnRateWarningFilter:
    """Say whether the spawn rate Locust gets next is the user's (installs the filter once per logger)."""
    logger = logging.getLogger(logger_name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    _FILTER.user_chose = chosen
    return _FILTER
