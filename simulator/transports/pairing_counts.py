"""Pairing API retries and give-ups per phase, process-wide (simulator.transports.pairing_retry counts them).

Its own module, free of `requests` (and so of `ssl`): the generator reads it from code that runs before gevent
has patched the standard library, and importing `ssl` first breaks Locust's later patching.
"""

from __future__ import annotations

import threading

__all__ = ["RETRY_COUNTS", "RetryCounts"]


class RetryCounts:
    """Retries and give-ups per phase; thread-safe (the SDK transport calls from paho threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """{"pairing_retries.<phase>": n, "pairing_gave_up.<phase>": n} so far."""
        with self._lock:
            return dict(self._counts)

    def since(self, before: dict[str, int]) -> dict[str, int]:
        """What was counted after `before` (a snapshot), zero entries left out."""
        now = self.snapshot()
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}


RETRY_COUNTS = RetryCounts()
