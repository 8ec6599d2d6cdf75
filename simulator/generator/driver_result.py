"""What a campaign driver reports at the end of a run: the backend's own view (simulator.generator.campaign_driver)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.metrics.convergence import BackendOperation

__all__ = ["DriverResult"]


@dataclass(frozen=True)
class DriverResult:
    """The backend's own view of the campaign at the end of the run."""

    driver: str  # "embedded" | "edgehog"
    campaign_id: str
    status: str | None  # the campaign's outcome as the backend reports it (e.g. "success", "FINISHED")
    max_in_progress: int
    operations: tuple[BackendOperation, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)  # the backend's report, per-operation rows left out
