"""A campaign over real mosquitto + mutual TLS against 55 simulated devices (paho responders written here).

Each responder does the SDK's fresh-session handshake (subscribe to its OTARequest topic, introspection,
emptyCache, BaseImage /version), then answers an Update with the runtime's success path (docs/protocol.md
section 4: Acknowledged, Downloading 0/100, Deploying 0/100, Deployed, Rebooting, Success) and republishes
BaseImage /version. Five devices are already on the target version (skipped); three ignore their first
request (the retry path).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bson
import paho.mqtt.client as mqtt
import pytest

from simulator.backend.broker import ADMIN_CN, BrokerConfig
from simulator.backend.ca import LocalCA
from simulator.backend.collector import Collector, CollectorConfig
from simulator.backend.control_http import ControlServer
from simulator.backend.mosquitto import MosquittoBroker
from tests.integration.backend.tls_helpers import device_id, make_csr, write_device_cert

pytestmark = pytest.mark.integration
REALM = "fleetsim"
OTA = "io.edgehog.devicemanager.OTAEvent"
REQ = "io.edgehog.devicemanager.OTARequest"
BASE = "io.edgehog.devicemanager.BaseImage"
STEPS = (("Acknowledged", 0), ("Downloading", 0), ("Downloading", 100), ("Deploying", 0), ("Deploying", 100),
         ("Deployed", 0), ("Rebooting", 0), ("Success", 0))


class Responder:
    """One simulated device: a paho client with its CA-signed certificate and its own loop thread."""

    def __init__(self, ca: LocalCA, tmp: Path, version: str, ignore_first: bool) -> None:
        self.dev = device_id()
        self.version = version
        self.ignore_first = ignore_first
        self.requests: list[dict[str, str]] = []
        self.handled: set[str] = set()
        self.ready = threading.Event()
        key, csr = make_csr(f"{REALM}/{self.dev}")
        cert, keyf = write_device_cert(tmp, self.dev, key, ca.sign_csr(csr, f"{REALM}/{self.dev}"))
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{REALM}/{self.dev}")
        self.client.tls_set(ca_certs=str(ca.ca_cert_path), certfile=str(cert), keyfile=str(keyf))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.prefix = f"{REALM}/{self.dev}"

    def start(self, port: int) -> None:
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, *_a: object) -> None:
        client.subscribe(f"{self.prefix}/{REQ}/#", qos=2)

    def _on_subscribe(self, client: mqtt.Client, *_a: object) -> None:
        client.publish(self.prefix, f"{OTA}:0:1;{REQ}:1:0;{BASE}:0:1".encode(), qos=2)
        client.publish(f"{self.prefix}/control/emptyCache", b"1", qos=2)
        client.publish(f"{self.prefix}/{BASE}/version", bson.dumps({"v": self.version}), qos=2)
        self.ready.set()

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        request = bson.loads(msg.payload)["v"]
        self.requests.append(request)
        if request["operation"] != "Update" or (self.ignore_first and len(self.requests) == 1):
            return
        if request["uuid"] in self.handled:
            return  # the runtime ignores an Update with the uuid it already runs (docs/protocol.md section 4)
        self.handled.add(request["uuid"])
        for status, progress in STEPS:
            value = {"requestUUID": request["uuid"], "status": status, "statusProgress": progress,
                     "statusCode": "", "message": ""}
            payload = bson.dumps({"v": value, "t": dt.datetime.now(dt.UTC)})
            client.publish(f"{self.prefix}/{OTA}/event", payload, qos=2)
        client.publish(f"{self.prefix}/{BASE}/version", bson.dumps({"v": "2.0.0"}), qos=2)


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    ca = LocalCA(tmp_path / "state")
    ca.ensure()
    return ca


@pytest.fixture
def broker(ca: LocalCA, mosquitto_binary: str) -> Iterator[MosquittoBroker]:
    cert, key = ca.server_cert()
    b = MosquittoBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, verbose_log=False),
                        binary=mosquitto_binary)
    b.start()
    yield b
    b.stop()


def test_campaign_of_55_devices_completes(ca: LocalCA, broker: MosquittoBroker, tmp_path: Path) -> None:
    cert, key = ca.issue_client_cert(ADMIN_CN)
    collector = Collector(CollectorConfig("127.0.0.1", broker.port, ca.ca_cert_path, cert, key, REALM))
    collector.start()
    control = ControlServer(collector)
    base = control.start()
    responders = [Responder(ca, tmp_path, "2.0.0" if i < 5 else "1.0.0", ignore_first=5 <= i < 8)
                  for i in range(55)]
    try:
        for r in responders:
            r.start(broker.port)
        assert all(r.ready.wait(10.0) for r in responders)
        # The campaign reads BaseImage /version from the collector: wait until all 55 are known.
        assert collector.wait_for(
            lambda: all(collector.properties(r.dev).get(BASE, {}).get("/version") for r in responders), 10.0)

        spec = {"devices": [r.dev for r in responders], "url": "https://updates.example/2.0.0.raucb",
                "max_in_progress": 10, "request_timeout_s": 1.5, "allow_short_timeout": True,
                "request_retries": 3, "max_failure_percentage": 10, "target_version": "2.0.0", "uuid_seed": 1}
        req = urllib.request.Request(f"{base}/campaigns", data=json.dumps(spec).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 201
            campaign_id = json.loads(resp.read())["id"]
        runner = control.campaigns.get(campaign_id)
        assert runner is not None
        assert runner.wait(60.0), runner.report()

        with urllib.request.urlopen(f"{base}/campaigns/{campaign_id}", timeout=5) as resp:
            report = json.loads(resp.read())
        assert report["status"] == "success"
        assert report["operations_by_state"] == {"already_updated": 5, "success": 50}
        assert report["final_status"] == {"Success": 50}
        assert report["stuck_in_progress"] == []
        assert report["retries_sent"] >= 3  # exactly 3 unless the machine stalled a responder 1.5 s
        assert report["time_to_ack_s"]["count"] == 50 and report["time_to_final_s"]["count"] == 50
        # Retried devices got the same uuid twice; skipped devices got nothing.
        for r in responders[5:8]:
            assert len(r.requests) >= 2 and r.requests[0] == r.requests[1]
        assert all(r.requests == [] for r in responders[:5])
        # Every event arrived, valid, and the devices now report the new version.
        assert collector.wait_for(lambda: collector.arrival_count() == 50 * len(STEPS), 10.0)
        assert collector.wait_for(
            lambda: all(collector.properties(r.dev)[BASE]["/version"] == "2.0.0" for r in responders), 10.0)
        assert collector.violations() == {}
        assert collector.stats()["qos_delivered"][f"{REQ}|0"] == report["requests_sent"]  # all at QoS 0
    finally:
        for r in responders:
            r.stop()
        control.stop()
        collector.stop()


def test_bad_campaign_spec_is_a_400_naming_the_field(ca: LocalCA, broker: MosquittoBroker) -> None:
    cert, key = ca.issue_client_cert(ADMIN_CN)
    collector = Collector(CollectorConfig("127.0.0.1", broker.port, ca.ca_cert_path, cert, key, REALM))
    collector.start()
    control = ControlServer(collector)
    base = control.start()
    try:
        req = urllib.request.Request(f"{base}/campaigns", data=b'{"devices": ["a"], "request_timeout_s": 5}',
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 400
        assert "request_timeout_s" in json.loads(err.value.read())["errors"][0]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/campaigns/c99", timeout=5)
        assert err.value.code == 404
    finally:
        control.stop()
        collector.stop()
