"""Drive a real Edgehog through its GraphQL API: an update campaign (or one manual OTA operation per device).

Campaign (`drive: campaign`), as a user does it in Edgehog's UI (doc/pages/user/update_campaigns.md):
1. wait until Edgehog knows every simulated device (it learns them from Astarte's device-connected trigger);
2. tag them (`<handle_prefix>-<scenario>`), then create or reuse, by handle: a hardware type and a system model
   with the devices' part number (SystemInfo /partNumber = FLEETSIM-VD-1), a base image collection, the base
   image for `fleet.target_version` (uploaded), a device group selecting the tag, a channel targeting it;
3. create the campaign with the scenario's `campaign:` settings (firmwareUpgrade mechanism);
4. poll it until FINISHED; read every target's OTA operation (id = the requestUUID, status, statusCode).
Manual (`drive: manual`): `createManualOtaOperation(deviceId, baseImageUrl = campaign.url)` per device, then
poll each device's OTA operations until every one is final.
Timeouts are scaled like the embedded driver's (device seconds / time_scale) with Edgehog's 30 s minimum.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulator.edgehog import documents as gql
from simulator.edgehog.client import EdgehogError, GraphQLClient, mutation_result
from simulator.edgehog.config import EdgehogConfig
from simulator.generator.driver_result import DriverResult
from simulator.metrics.convergence import BackendOperation
from simulator.scenario.model import Scenario

__all__ = ["PART_NUMBER", "EdgehogDriver"]

PART_NUMBER = "FLEETSIM-VD-1"  # what the virtual devices publish as SystemInfo /partNumber (simulator.device)
DEVICES_WAIT_S = 120.0  # Edgehog creates a device when Astarte's device_connected trigger reaches it
EDGEHOG_MIN_TIMEOUT_S = 30
PLACEHOLDER_IMAGE_BYTES = 64 * 1024
_FINAL = ("SUCCESS", "FAILURE")


def _handle(text: str) -> str:
    """Edgehog handles: lowercase letters, digits and hyphens, starting with a letter."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned if cleaned[:1].isalpha() else f"f-{cleaned}"


class EdgehogDriver:
    name = "edgehog"

    def __init__(self, config: EdgehogConfig, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, devices_wait_s: float = DEVICES_WAIT_S,
                 note: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self.client = GraphQLClient(config)
        self._sleep, self._monotonic, self._note = sleep, monotonic, note
        self.devices_wait_s = devices_wait_s
        self.campaign_id = ""
        self.max_in_progress = 0
        self.ids: dict[str, str] = {}  # Astarte device id -> Edgehog Device id
        self.manual_ops: dict[str, str] = {}  # device id -> OTA operation id
        self.missing: list[str] = []
        self._last_poll = -math.inf
        self._finished = False

    # -- CampaignDriver ----------------------------------------------------------------------------------

    def start(self, scenario: Scenario, device_ids: Sequence[str]) -> str:
        self.ids = self._wait_for_devices(list(device_ids))
        if self.config.drive == "manual":
            return self._start_manual(scenario)
        return self._start_campaign(scenario)

    def finished(self) -> bool:
        now = self._monotonic()
        if self._finished or now - self._last_poll < self.config.poll_interval_s:
            return self._finished
        self._last_poll = now
        try:
            if self.config.drive == "manual":
                ops = self._manual_operations()
                self._finished = bool(ops) and all(o.status.upper() in _FINAL for o in ops)
            else:
                doc = self.client.query(gql.CAMPAIGN_STATUS, {"id": self.campaign_id}).get("campaign") or {}
                self._finished = doc.get("status") == "FINISHED"
        except EdgehogError as exc:  # a slow or restarting Edgehog must not end the run early
            self._note(f"fleetsim: Edgehog status not read: {exc}")
        return self._finished

    def result(self) -> DriverResult:
        if self.config.drive == "manual":
            ops = self._manual_operations()
            status = "finished" if ops and all(o.status.upper() in _FINAL for o in ops) else "in_progress"
            summary: dict[str, Any] = {"drive": "manual", "operations": len(ops)}
        else:
            doc = self.client.query(gql.CAMPAIGN_STATUS, {"id": self.campaign_id}).get("campaign") or {}
            status = "/".join(str(doc.get(k)) for k in ("status", "outcome") if doc.get(k))
            summary = {"drive": "campaign", **{k: v for k, v in doc.items() if k != "id"}}
            ops = self._campaign_operations()
        summary.update({"campaign_id": self.campaign_id, "devices_missing_in_edgehog": len(self.missing),
                        "graphql_requests": self.client.requests})
        return DriverResult("edgehog", self.campaign_id, status or None, self.max_in_progress, tuple(ops), summary)

    # -- setup ---------------------------------------------------------------------------------------------

    def _wait_for_devices(self, device_ids: list[str]) -> dict[str, str]:
        deadline = self._monotonic() + self.devices_wait_s
        while True:
            known = self._lookup_devices(device_ids)
            self.missing = [d for d in device_ids if d not in known]
            if not self.missing:
                return known
            if self._monotonic() >= deadline:
                if not known:
                    raise EdgehogError(f"Edgehog does not know any of the {len(device_ids)} devices after "
                                       f"{self.devices_wait_s:g} s (is its Astarte trigger installed?)")
                self._note(f"fleetsim: {len(self.missing)} devices unknown to Edgehog; driving the "
                           f"{len(known)} it knows")
                return known
            self._sleep(self.config.poll_interval_s)

    def _lookup_devices(self, device_ids: list[str]) -> dict[str, str]:
        known: dict[str, str] = {}
        for i in range(0, len(device_ids), gql.PAGE):
            after: str | None = None
            while True:
                conn = self.client.query(gql.DEVICES_BY_ID, {"ids": device_ids[i:i + gql.PAGE], "after": after})
                page = conn.get("devices") or {}
                for edge in page.get("edges") or []:
                    known[edge["node"]["deviceId"]] = edge["node"]["id"]
                info = page.get("pageInfo") or {}
                if not info.get("hasNextPage"):
                    break
                after = info.get("endCursor")
        return known

    def _find_or_create(self, find: str, find_field: str, handle: str, create: str, create_field: str,
                        variables: dict[str, Any], what: str) -> str:
        edges = ((self.client.query(find, {"handle": handle}).get(find_field) or {}).get("edges")) or []
        if edges:
            return str(edges[0]["node"]["id"])
        data = self.client.query(create, {"handle": handle, **variables})
        return str(mutation_result(data, create_field, what)["id"])

    def _start_campaign(self, scenario: Scenario) -> str:
        prefix = _handle(self.config.handle_prefix)
        tag = _handle(f"{prefix}-{scenario.name}")
        for device_id in self.ids.values():
            mutation_result(self.client.query(gql.ADD_DEVICE_TAGS, {"id": device_id, "tags": [tag]}),
                            "addDeviceTags", "tag a device")
        hw = self._find_or_create(gql.HARDWARE_TYPE_BY_HANDLE, "hardwareTypes", f"{prefix}-hw",
                                  gql.CREATE_HARDWARE_TYPE, "createHardwareType",
                                  {"name": "fleetsim virtual hardware", "partNumbers": [PART_NUMBER]},
                                  "create the hardware type")
        model = self._find_or_create(gql.SYSTEM_MODEL_BY_HANDLE, "systemModels", f"{prefix}-model",
                                     gql.CREATE_SYSTEM_MODEL, "createSystemModel",
                                     {"name": "fleetsim virtual device", "hardwareTypeId": hw,
                                      "partNumbers": [PART_NUMBER]}, "create the system model")
        collection = self._find_or_create(gql.COLLECTION_BY_HANDLE, "baseImageCollections", f"{prefix}-images",
                                          gql.CREATE_COLLECTION, "createBaseImageCollection",
                                          {"name": "fleetsim images", "systemModelId": model},
                                          "create the base image collection")
        image = self._base_image(collection, scenario.fleet.target_version)
        group = self._find_or_create(gql.GROUP_BY_HANDLE, "deviceGroups", tag, gql.CREATE_DEVICE_GROUP,
                                     "createDeviceGroup", {"name": tag, "selector": f'"{tag}" in tags'},
                                     "create the device group")
        channel = self._find_or_create(gql.CHANNEL_BY_HANDLE, "channels", tag, gql.CREATE_CHANNEL,
                                       "createChannel", {"name": tag, "groupIds": [group]},
                                       "create the channel")
        c = scenario.campaign
        self.max_in_progress = c.max_in_progress
        mechanism = {
            "baseImageId": image, "maxInProgressOperations": c.max_in_progress, "requestRetries": c.request_retries,
            "requestTimeoutSeconds": max(EDGEHOG_MIN_TIMEOUT_S, round(c.request_timeout_s / scenario.time_scale)),
            "maxFailurePercentage": c.max_failure_percentage, "forceDowngrade": False,
        }
        name = f"{tag} seed {scenario.seed} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        data = self.client.query(gql.CREATE_CAMPAIGN, {"name": name, "channelId": channel, "mechanism": mechanism})
        self.campaign_id = str(mutation_result(data, "createCampaign", "create the campaign")["id"])
        return self.campaign_id

    def _base_image(self, collection: str, version: str) -> str:
        found = (self.client.query(gql.BASE_IMAGES_BY_VERSION, {"id": collection, "version": version})
                 .get("baseImageCollection") or {})
        edges = (found.get("baseImages") or {}).get("edges") or []
        if edges:
            return str(edges[0]["node"]["id"])
        path = self.config.base_image_file
        content = Path(path).read_bytes() if path else _placeholder_image(version)
        data = self.client.upload(gql.CREATE_BASE_IMAGE, {"collectionId": collection, "version": version},
                                  "file", Path(path).name if path else f"fleetsim-{version}.bin", content)
        return str(mutation_result(data, "createBaseImage", "create the base image")["id"])

    def _start_manual(self, scenario: Scenario) -> str:
        for device, edgehog_id in self.ids.items():
            data = self.client.query(gql.CREATE_MANUAL_OTA, {"deviceId": edgehog_id, "url": scenario.campaign.url})
            self.manual_ops[device] = str(mutation_result(data, "createManualOtaOperation",
                                                          "create an OTA operation")["id"])
        self.campaign_id = f"manual:{len(self.manual_ops)}"
        return self.campaign_id

    # -- reading back --------------------------------------------------------------------------------------

    def _campaign_operations(self) -> list[BackendOperation]:
        ops: list[BackendOperation] = []
        after: str | None = None
        while True:
            doc = self.client.query(gql.CAMPAIGN_TARGETS, {"id": self.campaign_id, "after": after})
            conn = (doc.get("campaign") or {}).get("campaignTargets") or {}
            for edge in conn.get("edges") or []:
                node = edge["node"]
                ota = node.get("otaOperation")
                if ota:  # an IDLE target never got an operation (the campaign stopped first)
                    ops.append(_operation(node["device"]["deviceId"], ota))
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return ops
            after = info.get("endCursor")

    def _manual_operations(self) -> list[BackendOperation]:
        ops: list[BackendOperation] = []
        for device, edgehog_id in self.ids.items():
            doc = self.client.query(gql.DEVICE_OTA_OPERATIONS, {"id": edgehog_id}).get("device") or {}
            wanted = self.manual_ops.get(device)
            for edge in (doc.get("otaOperations") or {}).get("edges") or []:
                if edge["node"]["id"] == wanted:
                    ops.append(_operation(device, edge["node"]))
        return ops


def _operation(device: str, ota: dict[str, Any]) -> BackendOperation:
    code = str(ota.get("statusCode") or "")
    return BackendOperation(device=device, uuid=str(ota["id"]), status=str(ota.get("status") or ""),
                            status_code=code, timed_out=code == "REQUEST_TIMEOUT")


def _placeholder_image(version: str) -> bytes:
    """A recognisable, deterministic stand-in for a RAUC bundle (Edgehog stores it; devices never install it)."""
    header = f"fleetsim placeholder base image {version}\n".encode()
    return header + bytes(PLACEHOLDER_IMAGE_BYTES - len(header))
