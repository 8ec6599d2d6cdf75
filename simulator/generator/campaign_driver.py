"""Who drives the campaign in `mode: campaign`: a small protocol and its implementations.

- `EmbeddedDriver`: the embedded backend's Edgehog-like campaign driver (its control endpoint, loopback);
- `simulator.edgehog.driver.EdgehogDriver`: a real Edgehog through its GraphQL API (target file `edgehog:`).
`driver_for(scenario, target)` picks one; None means nobody: devices answer OTARequests from any sender
(`mode: responder`, or a target without a campaign driver).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from simulator.generator.campaign_client import CampaignClient, campaign_spec
from simulator.generator.driver_result import DriverResult
from simulator.generator.target import TargetInfo
from simulator.metrics.convergence import BackendOperation
from simulator.scenario.model import Scenario

__all__ = ["CampaignDriver", "DriverResult", "EmbeddedDriver", "driver_for"]

# Operation states of the embedded driver that mean a request was sent (simulator.backend.campaign).
_SENT_STATES = ("in_progress", "success", "failure", "timed_out")


class CampaignDriver(Protocol):
    name: str

    def start(self, scenario: Scenario, device_ids: Sequence[str]) -> str:
        """Start the campaign on these devices; returns its id."""
        ...

    def finished(self) -> bool:
        """True once the backend says the campaign is over (errors read as not finished)."""
        ...

    def result(self) -> DriverResult:
        ...


class EmbeddedDriver:
    """The embedded backend's campaign driver (POST /campaigns on its control endpoint)."""

    name = "embedded"

    def __init__(self, control_url: str, images_url: str = "") -> None:
        self.client = CampaignClient(control_url)
        self.images_url = images_url
        self.max_in_progress = 0

    def start(self, scenario: Scenario, device_ids: Sequence[str]) -> str:
        self.max_in_progress = scenario.campaign.max_in_progress
        return self.client.start(campaign_spec(scenario, list(device_ids), self.images_url))

    def finished(self) -> bool:
        try:
            return bool(self.client.status().get("finished"))
        except Exception:  # a slow control endpoint must not end the run early
            return False

    def result(self) -> DriverResult:
        doc = self.client.status()
        rows = doc.get("operations") or []
        ops = tuple(
            BackendOperation(device=str(r.get("device")), uuid=str(r.get("uuid")),
                             status=str(r.get("last_status") or ""), status_code=str(r.get("status_code") or ""),
                             timed_out=r.get("state") == "timed_out")
            for r in rows if isinstance(r, Mapping) and r.get("state") in _SENT_STATES)
        summary = {k: v for k, v in doc.items() if k != "operations"}
        return DriverResult("embedded", self.client.campaign_id, str(doc.get("status") or "") or None,
                            self.max_in_progress, ops, summary)


def driver_for(scenario: Scenario, target: TargetInfo,
               note: Callable[[str], None] = lambda line: None) -> CampaignDriver | None:
    """The campaign driver for this run, or None (responder: devices answer whoever sends requests)."""
    if scenario.mode != "campaign":
        return None
    if target.control_url:
        return EmbeddedDriver(target.control_url, target.images_url)
    if target.kind == "astarte" and target.target_file:
        from pathlib import Path

        from simulator.generator.target_file import read_target_file

        config = read_target_file(Path(target.target_file), Path(".fleetsim")).edgehog
        if config is not None:
            from simulator.edgehog.driver import EdgehogDriver

            return EdgehogDriver(config, note=note)
    return None
