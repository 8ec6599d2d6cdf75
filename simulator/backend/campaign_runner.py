"""Drive a CampaignState (simulator.backend.campaign) against real devices through the collector's connection.

OTARequests leave through the collector's MQTT client (admin identity, mutual TLS) as BSON `{"v": {...}}` with
no `t`, at QoS 0 (io.edgehog.devicemanager.OTARequest v1.0 declares no reliability: docs/protocol.md section 5);
OTAEvents come back through a collector listener and are fed to the state machine. A small timer thread fires
the retry timers (`tick`). One lock guards the state: events arrive on paho's network thread, ticks on ours.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import bson

from simulator.backend.campaign import CampaignSpec, CampaignState, OtaRequest
from simulator.backend.collector import Collector
from simulator.backend.validation import KIND_DATASTREAM, Classified
from simulator.clock import Clock, MonotonicClock
from simulator.events import OTA_EVENT_INTERFACE

__all__ = ["BASE_IMAGE_INTERFACE", "CampaignManager", "CampaignRunner", "encode_request"]

BASE_IMAGE_INTERFACE = "io.edgehog.devicemanager.BaseImage"
_TICK_S = 0.05  # timer resolution of the retry timers (s); Edgehog's own timeouts are >= 30 s


def encode_request(request: OtaRequest) -> bytes:
    """The wire payload: BSON `{"v": {"operation", "url", "uuid"}}`, no `t` (not explicit_timestamp)."""
    payload: bytes = bson.dumps({"v": request.value()})
    return payload


class CampaignRunner:
    """One campaign against the devices behind `collector`. `start()` returns at once; `wait()` blocks."""

    def __init__(
        self,
        spec: CampaignSpec,
        collector: Collector,
        clock: Clock | None = None,
        publish: Callable[[str, bytes, int], None] | None = None,
    ) -> None:
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._collector = collector
        self._realm = collector.config.realm
        self._publish = publish if publish is not None else collector.publish
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._targets = frozenset(spec.devices)
        self.requests_sent = 0
        self.publish_errors: list[str] = []
        self.state = CampaignState(spec, version_of=self._version_of)

    def _version_of(self, device: str) -> str | None:
        value = self._collector.properties(device).get(BASE_IMAGE_INTERFACE, {}).get("/version")
        return value if isinstance(value, str) else None

    def start(self) -> None:
        self._collector.add_listener(self._on_message)
        self._thread = threading.Thread(target=self._run, name="fleetsim-campaign", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._collector.remove_listener(self._on_message)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def wait(self, timeout: float) -> bool:
        """True once the campaign finished (every operation final, or failed with nothing in progress)."""
        return self._done.wait(timeout)

    def cancel(self, device: str) -> None:
        with self._lock:
            requests = self.state.cancel(device, self._clock.monotonic())
            self._send(requests)

    def report(self) -> dict[str, Any]:
        with self._lock:
            report = self.state.report()
        report["requests_sent"] = self.requests_sent
        report["publish_errors"] = list(self.publish_errors[:20])
        return report

    # -- internals (under self._lock) -----------------------------------------------------------------------

    def _send(self, requests: list[OtaRequest]) -> None:
        for request in requests:
            try:
                self._publish(request.topic(self._realm), encode_request(request), OtaRequest.QOS)
                self.requests_sent += 1
            except Exception as exc:  # a lost request is what the retry timer is for; keep the reason
                self.publish_errors.append(f"{request.device}: {exc}")
        if self.state.finished:
            self._done.set()

    def _on_message(self, msg: Classified, _arrival: float) -> None:
        if (msg.interface != OTA_EVENT_INTERFACE or msg.kind != KIND_DATASTREAM
                or msg.device_id not in self._targets or not isinstance(msg.value, Mapping)):
            return
        with self._lock:
            self._send(self.state.on_event(msg.device_id, msg.value, self._clock.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                now = self._clock.monotonic()
                self._send(self.state.tick(now))
                deadline = self.state.next_deadline()
                finished = self.state.finished
            if finished:
                self._done.set()
                return
            wait = _TICK_S if deadline is None else min(_TICK_S, max(0.0, deadline - now))
            self._stop.wait(wait)  # the runner's own timer, not a test wait


class CampaignManager:
    """Campaigns by id, for the control HTTP endpoint (POST /campaigns, GET /campaigns/<id>)."""

    def __init__(self, collector: Collector, clock: Clock | None = None) -> None:
        self._collector = collector
        self._clock = clock
        self._lock = threading.Lock()
        self._runners: dict[str, CampaignRunner] = {}
        self._ids = itertools.count(1)

    def create(self, spec: CampaignSpec) -> str:
        runner = CampaignRunner(spec, self._collector, self._clock)
        with self._lock:
            campaign_id = f"c{next(self._ids)}"
            self._runners[campaign_id] = runner
        runner.start()
        return campaign_id

    def create_from_json(self, data: Mapping[str, Any]) -> str:
        """Raises simulator.errors.ConfigErrors on a bad spec."""
        return self.create(CampaignSpec.from_dict(data, source="POST /campaigns"))

    def get(self, campaign_id: str) -> CampaignRunner | None:
        with self._lock:
            return self._runners.get(campaign_id)

    def status(self, campaign_id: str) -> dict[str, Any] | None:
        runner = self.get(campaign_id)
        if runner is None:
            return None
        return {"id": campaign_id, **runner.report()}

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._runners)

    def stop_all(self) -> None:
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.stop()
