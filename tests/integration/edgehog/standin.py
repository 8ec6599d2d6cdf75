"""A small Edgehog stand-in for tests: its tenant GraphQL API (a subset) and its OTA side over a real broker.

What it covers, like Edgehog does it:
- `POST /tenants/<tenant>/api`, JSON or GraphQL multipart (uploads), `Authorization: Bearer` verified with the
  tenant's public key and an `e_tga` claim (backend/lib/edgehog_web/auth/token.ex);
- the operations fleetsim's client uses (standin_schema.SDL, validated by graphql-core): devices by device id,
  tags, hardware types / system models / base image collections / base images / device groups / channels by
  handle, update campaigns (firmwareUpgrade), manual OTA operations, campaign targets with their operations;
- devices are known once they publish on the broker (Edgehog learns them from Astarte's device triggers);
  group selectors only of the form `"<tag>" in tags`;
- the lazy batch executor: at most maxInProgressOperations operations at once, each a new OTA operation whose
  id is the OTARequest uuid, published at QoS 0 with the admin identity (as Astarte does for Edgehog); the
  request is re-sent with the same uuid after requestTimeoutSeconds while retries are left, then the operation
  fails with REQUEST_TIMEOUT; the campaign fails past maxFailurePercentage; FINISHED when no target is left;
- OTAEvents update the operation's status with NO terminal-state guard (OtaOperation :update_status accepts
  any status), while a campaign target, once final, stays final. `late_downloading` holds back the first
  Downloading event of the first N operations and applies it after their Success: the regression a late
  event causes in Edgehog.
Not covered: pagination beyond one page, sorting, scheduling, pausing, OTA requests by file upload, anything
outside OTA.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import bson
import graphql
import jwt
import paho.mqtt.client as mqtt

from simulator.backend.server import BackendInfo
from tests.integration.edgehog.standin_schema import SDL

OTA_EVENT = "io.edgehog.devicemanager.OTAEvent"
OTA_REQUEST = "io.edgehog.devicemanager.OTARequest"
BASE_IMAGE = "io.edgehog.devicemanager.BaseImage"
_CODES = {"IOError": "IO_ERROR"}  # camel case the generic rule would split wrongly


def _code(device_code: str) -> str | None:
    if not device_code:
        return None
    return _CODES.get(device_code) or re.sub(r"(?<!^)(?=[A-Z])", "_", device_code).upper()


def _conn(nodes: list[Any]) -> dict[str, Any]:
    return {"count": len(nodes), "pageInfo": {"hasPreviousPage": False, "hasNextPage": False,
                                              "startCursor": None, "endCursor": None},
            "edges": [{"cursor": str(i), "node": n} for i, n in enumerate(nodes)]}


@dataclass
class OtaOp:
    id: str
    device: str
    url: str
    status: str = "PENDING"
    statusProgress: int = 0
    statusCode: str | None = None
    retries: int = 0
    deadline: float = 0.0
    held: list[tuple[str, str, int]] = field(default_factory=list)  # a late Downloading waiting to be applied


@dataclass
class Target:
    device: str
    status: str = "IDLE"
    op: OtaOp | None = None


@dataclass
class CampaignRun:
    id: str
    name: str
    targets: list[Target]
    max_in_progress: int
    retries: int
    timeout_s: float
    max_failure: float
    url: str
    status: str = "IN_PROGRESS"
    outcome: str | None = None


class EdgehogStandIn:
    def __init__(self, backend: BackendInfo, tenant: str, public_key_pem: bytes, late_downloading: int = 0) -> None:
        self.backend, self.tenant, self.public_key = backend, tenant, public_key_pem
        self.late_downloading = late_downloading
        self.schema = graphql.build_schema(SDL)
        self.lock = threading.RLock()
        self.ids = (str(i) for i in itertools.count(1))
        self.devices: dict[str, dict[str, Any]] = {}  # deviceId -> Device
        self.tags: dict[str, set[str]] = {}
        self.by_handle: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, handle) -> node
        self.images: dict[str, dict[str, Any]] = {}  # id -> BaseImage (+ collection, size)
        self.groups: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, list[str]] = {}  # channel id -> group ids
        self.campaigns: dict[str, CampaignRun] = {}
        self.ops: dict[str, OtaOp] = {}
        self.calls: list[str] = []  # root fields called, in order
        self.refused: list[str] = []  # auth or validation refusals
        self.peak_in_progress = 0
        self.requests_published = 0
        self.regressed: list[str] = []  # operation ids a late Downloading overwrote after Success
        self._stop = threading.Event()
        url = urlsplit(backend.broker_url)
        self.mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edgehog-standin")
        self.mqtt.tls_set(ca_certs=backend.ca_file, certfile=backend.admin_cert, keyfile=backend.admin_key)
        self.mqtt.on_message = self._on_mqtt
        self.mqtt.connect(url.hostname or "127.0.0.1", url.port or 8883, keepalive=30)
        realm = backend.realm
        self.mqtt.subscribe([(f"{realm}/+/{OTA_EVENT}/#", 2), (f"{realm}/+/{BASE_IMAGE}/version", 2)])
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self._threads = [threading.Thread(target=self.http.serve_forever, daemon=True),
                         threading.Thread(target=self._executor, daemon=True)]

    def start(self) -> EdgehogStandIn:
        self.mqtt.loop_start()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.http.shutdown()
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    # -- HTTP + GraphQL --------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                pass

            def do_POST(self) -> None:
                status, doc = standin.handle(self.path, dict(self.headers),
                                             self.rfile.read(int(self.headers.get("Content-Length", 0))))
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") != f"/tenants/{self.tenant}/api":
            return 404, {"errors": [{"message": "not found"}]}
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["ES256", "RS256"])
            assert "e_tga" in claims
        except Exception as exc:
            self.refused.append(f"auth: {exc!r}")
            return 401, {"errors": [{"message": "invalid_token"}]}
        kind = headers.get("Content-Type", "")
        ops = _multipart(kind, body) if kind.startswith("multipart/form-data") else json.loads(body)
        result = graphql.graphql_sync(self.schema, ops["query"], root_value=self._root(),
                                      variable_values=ops.get("variables"))
        if result.errors:
            self.refused.extend(e.message for e in result.errors)
            return 200, {"errors": [{"message": e.message} for e in result.errors]}
        return 200, {"data": result.data}

    def _root(self) -> dict[str, Callable[..., Any]]:
        def logged(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def call(_info: Any, **kwargs: Any) -> Any:
                with self.lock:
                    self.calls.append(name)
                    return fn(**kwargs)
            return call

        resolvers: dict[str, Callable[..., Any]] = {
            "devices": lambda filter=None, **_: _conn([d for d in self.devices.values()
                                                        if d["deviceId"] in (filter or {})["deviceId"]["in"]]),
            "device": lambda id: next((d for d in self.devices.values() if d["id"] == id), None),
            "hardwareTypes": lambda filter, **_: self._find("hw", filter),
            "systemModels": lambda filter, **_: self._find("model", filter),
            "baseImageCollections": lambda filter, **_: self._find("collection", filter),
            "baseImageCollection": lambda id: next(
                (n for (k, _h), n in self.by_handle.items() if k == "collection" and n["id"] == id), None),
            "deviceGroups": lambda filter, **_: self._find("group", filter),
            "channels": lambda filter, **_: self._find("channel", filter),
            "campaign": lambda id: self._campaign_node(id),
            "addDeviceTags": self._add_tags,
            "createHardwareType": lambda input: self._create("hw", input),
            "createSystemModel": lambda input: self._create("model", input),
            "createBaseImageCollection": lambda input: self._create_collection(input),
            "createBaseImage": lambda input: self._create_image(input),
            "createDeviceGroup": lambda input: self._create("group", input),
            "createChannel": lambda input: self._create_channel(input),
            "createCampaign": lambda input: self._create_campaign(input),
            "createManualOtaOperation": lambda input: self._create_manual(input),
        }
        return {name: logged(name, fn) for name, fn in resolvers.items()}

    def _find(self, kind: str, flt: dict[str, Any]) -> dict[str, Any]:
        node = self.by_handle.get((kind, flt["handle"]["eq"]))
        return _conn([node] if node else [])

    def _create(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        if (kind, data["handle"]) in self.by_handle:
            return {"result": None, "errors": [{"message": "has already been taken", "fields": ["handle"]}]}
        node = {**data, "id": next(self.ids)}
        self.by_handle[(kind, data["handle"])] = node
        if kind == "group":
            self.groups[node["id"]] = node
        return {"result": node, "errors": []}

    def _create_collection(self, data: dict[str, Any]) -> dict[str, Any]:
        out = self._create("collection", data)
        if out["result"] is not None:
            collection = out["result"]
            collection["baseImages"] = lambda _info, filter=None, **_: _conn(
                [i for i in self.images.values() if i["collection"] == collection["id"]
                 and (filter is None or i["version"] == filter["version"]["eq"])])
        return out

    def _create_image(self, data: dict[str, Any]) -> dict[str, Any]:
        file = data["file"]
        if not isinstance(file, bytes) or not file:
            return {"result": None, "errors": [{"message": "is required", "fields": ["file"]}]}
        image = {"id": next(self.ids), "version": data["version"], "collection": data["baseImageCollectionId"],
                 "url": f"https://standin.invalid/images/{data['version']}.bin", "size": len(file)}
        self.images[image["id"]] = image
        return {"result": image, "errors": []}

    def _create_channel(self, data: dict[str, Any]) -> dict[str, Any]:
        out = self._create("channel", data)
        if out["result"] is not None:
            self.channels[out["result"]["id"]] = list(data.get("targetGroupIds") or [])
        return out

    def _add_tags(self, id: str, input: dict[str, Any]) -> dict[str, Any]:
        device = next((d for d in self.devices.values() if d["id"] == id), None)
        if device is None:
            return {"result": None, "errors": [{"message": "not found", "fields": ["id"]}]}
        self.tags.setdefault(device["deviceId"], set()).update(input["tags"])
        return {"result": device, "errors": []}

    def _create_campaign(self, data: dict[str, Any]) -> dict[str, Any]:
        fw = data["campaignMechanism"]["firmwareUpgrade"]
        image = self.images.get(fw["baseImageId"])
        groups = self.channels.get(data["channelId"])
        if image is None or groups is None:
            return {"result": None, "errors": [{"message": "not found", "fields": ["baseImageId", "channelId"]}]}
        if fw.get("requestTimeoutSeconds", 300) < 30:
            return {"result": None, "errors": [{"message": "must be >= 30", "fields": ["requestTimeoutSeconds"]}]}
        wanted = {m.group(1) for g in groups if (m := re.fullmatch(r'"(.+)" in tags', self.groups[g]["selector"]))}
        devices = sorted(d for d, tags in self.tags.items() if tags & wanted)
        run = CampaignRun(next(self.ids), data["name"], [Target(d) for d in devices],
                          fw.get("maxInProgressOperations", 10), fw.get("requestRetries", 3),
                          float(fw.get("requestTimeoutSeconds", 300)), float(fw.get("maxFailurePercentage", 0.0)),
                          image["url"])
        self.campaigns[run.id] = run
        return {"result": self._campaign_node(run.id), "errors": []}

    def _create_manual(self, data: dict[str, Any]) -> dict[str, Any]:
        device = next((d for d in self.devices.values() if d["id"] == data["deviceId"]), None)
        if device is None:
            return {"result": None, "errors": [{"message": "not found", "fields": ["deviceId"]}]}
        op = self._new_op(device["deviceId"], data.get("baseImageUrl") or "", 300.0)
        return {"result": self._op_node(op), "errors": []}

    def _op_node(self, op: OtaOp) -> dict[str, Any]:
        return {"id": op.id, "baseImageUrl": op.url, "status": op.status, "statusProgress": op.statusProgress,
                "statusCode": op.statusCode}

    def _campaign_node(self, cid: str) -> dict[str, Any] | None:
        run = self.campaigns.get(cid)
        if run is None:
            return None
        counts = {s: sum(1 for t in run.targets if t.status == s) for s in ("IDLE", "IN_PROGRESS", "FAILED",
                                                                            "SUCCESSFUL")}
        targets = [{"id": f"{cid}-{i}", "status": t.status, "retryCount": t.op.retries if t.op else 0,
                    "device": self.devices[t.device], "otaOperation": self._op_node(t.op) if t.op else None}
                   for i, t in enumerate(run.targets)]
        return {"id": run.id, "name": run.name, "status": run.status, "outcome": run.outcome,
                "campaignTargets": lambda _info, **_: _conn(targets), "totalTargetCount": len(run.targets),
                "idleTargetCount": counts["IDLE"], "inProgressTargetCount": counts["IN_PROGRESS"],
                "failedTargetCount": counts["FAILED"], "successfulTargetCount": counts["SUCCESSFUL"]}

    # -- OTA side ---------------------------------------------------------------------------------------------

    def _new_op(self, device: str, url: str, timeout_s: float) -> OtaOp:
        op = OtaOp(str(uuid.uuid4()), device, url, deadline=time.monotonic() + timeout_s)
        self.ops[op.id] = op
        d = self.devices[device]
        d.setdefault("_ops", []).append(op)
        d["otaOperations"] = lambda _info, **_: _conn([self._op_node(o) for o in d["_ops"]])
        self._send(op, "Update")
        return op

    def _send(self, op: OtaOp, operation: str) -> None:
        payload = bson.dumps({"v": {"operation": operation, "url": op.url, "uuid": op.id}})
        self.mqtt.publish(f"{self.backend.realm}/{op.device}/{OTA_REQUEST}/request", payload, qos=0)
        self.requests_published += 1

    def _on_mqtt(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[1]
        with self.lock:
            if f"/{BASE_IMAGE}/" in msg.topic:
                self.devices.setdefault(device, {"id": f"dev-{device}", "deviceId": device, "name": device,
                                                 "online": True,
                                                 "otaOperations": lambda _info, **_: _conn([])})
                return
            v = bson.loads(msg.payload)["v"]
            op = self.ops.get(v["requestUUID"])
            if op is None or op.device != device:
                return  # Edgehog drops events for operations it does not know
            status, code, progress = v["status"], v["statusCode"], v["statusProgress"]
            if status == "Downloading" and len(self.regressed) + self._holding() < self.late_downloading \
                    and not op.held:
                op.held.append((status, code, progress))  # delivered late: after the final event
                return
            self._update_status(op, status, code, progress)
            if status in ("Success", "Failure") and op.held:
                for late in op.held:
                    self._update_status(op, *late)
                op.held.clear()
                self.regressed.append(op.id)

    def _holding(self) -> int:
        return sum(1 for o in self.ops.values() if o.held)

    def _update_status(self, op: OtaOp, status: str, code: str, progress: int) -> None:
        """OtaOperation :update_status: whatever arrives is the new status (no terminal-state guard)."""
        op.status, op.statusCode, op.statusProgress = status.upper(), _code(code), progress
        op.deadline = float("inf")  # any event stops the retry timer
        for run in self.campaigns.values():
            for target in run.targets:
                if target.op is op and target.status == "IN_PROGRESS" and op.status in ("SUCCESS", "FAILURE"):
                    target.status = "SUCCESSFUL" if op.status == "SUCCESS" else "FAILED"

    def _executor(self) -> None:
        while not self._stop.wait(0.05):  # the executor's own tick, like Edgehog's timers
            with self.lock:
                for run in self.campaigns.values():
                    self._step(run)

    def _step(self, run: CampaignRun) -> None:
        if run.status != "IN_PROGRESS":
            return
        now = time.monotonic()
        for target in run.targets:
            op = target.op
            if target.status != "IN_PROGRESS" or op is None or op.deadline > now:
                continue
            if op.retries < run.retries:
                op.retries += 1
                op.deadline = now + run.timeout_s
                self._send(op, "Update")
            else:
                self._update_status(op, "Failure", "RequestTimeout", 0)
        failed = sum(1 for t in run.targets if t.status == "FAILED")
        too_many = run.targets and failed / len(run.targets) * 100 > run.max_failure
        in_progress = [t for t in run.targets if t.status == "IN_PROGRESS"]
        for target in run.targets:
            if too_many or len(in_progress) >= run.max_in_progress:
                break
            if target.status == "IDLE":
                target.status = "IN_PROGRESS"
                target.op = self._new_op(target.device, run.url, run.timeout_s)
                in_progress.append(target)
        self.peak_in_progress = max(self.peak_in_progress, len(in_progress))
        if not in_progress and (too_many or all(t.status != "IDLE" for t in run.targets)):
            run.status, run.outcome = "FINISHED", "FAILURE" if too_many else "SUCCESS"


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """GraphQL multipart request: `operations` JSON with the file variables filled in from `map`."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
             for p in message.iter_parts()}
    ops: dict[str, Any] = json.loads(parts["operations"])
    for key, paths in json.loads(parts["map"]).items():
        for path in paths:
            target = ops
            *head, last = path.split(".")
            for name in head:
                target = target[name]
            target[last] = parts[key]
    return ops
