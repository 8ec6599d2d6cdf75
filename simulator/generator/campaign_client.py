"""Starts and follows an Edgehog-like campaign on the embedded backend (its control endpoint, loopback).

The campaign driver lives in the backend process (simulator.backend.campaign): it publishes OTARequest to the
devices, like Edgehog does, and follows each operation to Success/Failure. Campaign times in the scenario are
device seconds (like every lifecycle duration): divided by time_scale for the wall clock.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from simulator.errors import UsageError
from simulator.scenario.model import Scenario

__all__ = ["CampaignClient", "campaign_spec"]

TIMEOUT_S = 10.0


def campaign_spec(scenario: Scenario, device_ids: list[str], images_url: str = "") -> dict[str, Any]:
    """`{images}` in campaign.url is the embedded backend's image server (simulator.backend.images)."""
    c = scenario.campaign
    timeout_wall = c.request_timeout_s / scenario.time_scale
    url = c.url.replace("{images}", images_url) if images_url else c.url
    return {
        "devices": device_ids, "url": url, "uuid_seed": scenario.seed, "max_in_progress": c.max_in_progress,
        "request_timeout_s": timeout_wall, "request_retries": c.request_retries,
        "max_failure_percentage": c.max_failure_percentage, "target_version": scenario.fleet.target_version,
        # Edgehog's 30 s minimum is in device time; scaled to the wall clock it may be shorter.
        "allow_short_timeout": timeout_wall < 30.0,
    }


class CampaignClient:
    def __init__(self, control_url: str) -> None:
        if not control_url:
            raise UsageError("mode: campaign needs the embedded backend (its campaign driver)")
        self.base = control_url.rstrip("/")
        self.campaign_id = ""

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise UsageError(f"campaign driver refused {method} {path}: {exc.code} {exc.read()[:300]!r}") from exc
        except OSError as exc:
            raise UsageError(f"campaign driver unreachable at {self.base}: {exc}") from exc

    def start(self, spec: dict[str, Any]) -> str:
        doc = self._call("POST", "/campaigns", spec)
        self.campaign_id = str(doc["id"]) if isinstance(doc, dict) and "id" in doc else str(doc)
        return self.campaign_id

    def status(self) -> dict[str, Any]:
        doc = self._call("GET", f"/campaigns/{self.campaign_id}")
        return doc if isinstance(doc, dict) else {}
