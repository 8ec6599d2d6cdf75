"""Responder mode through a target file: OTARequests come from plain MQTT clients, not from fleetsim's driver.

A live embedded backend is reached the way a staging Astarte is (a target file: pairing URL, realm, agent JWT,
CA), so no campaign driver is known to the run. The requests are published with the backend's admin
certificate by `mosquitto_pub` (QoS 0, the payload from `fleetsim otarequest`, as the README shows) and by a
paho client (QoS 1 and 2); the same paho client watches the devices' OTAEvents on the broker. Checked for both
transports: the runtime's answers (Update -> ... -> Success, unknown-uuid Cancel -> Failure/InternalError,
second Update -> Failure/UpdateAlreadyInProgress with the new uuid, the same uuid again ignored, Cancel while
downloading -> Failure/Canceled), `--until-idle` ending the run, and the campaign metrics in summary.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import bson
import paho.mqtt.client as mqtt
import pytest

from simulator.backend.server import BackendInfo, EmbeddedBackend
from tests.conftest import require_service
from tests.integration.engine.conftest import only_run_dir, summary_of

pytestmark = pytest.mark.integration
REALM = "fleetsim"
OTA = "io.edgehog.devicemanager.OTAEvent"
REQ = "io.edgehog.devicemanager.OTARequest"
BASE = "io.edgehog.devicemanager.BaseImage"
WAIT_S = 60.0

SCENARIO = """\
name: responder
realm: fleetsim
seed: 5
fleet: {{devices: 3, target_version: 1.1.0}}
time_scale: 600
duration: 90s
transport: {transport}
mode: responder
lifecycle:
  random:
    outcomes: {{success: 1.0}}
    download_duration: 1200s
    deploy_duration: 60s
    reboot_duration: 60s
"""


class Watcher:
    """The admin identity on the broker: sees every device's OTAEvents and BaseImage, publishes requests."""

    def __init__(self, info: BackendInfo) -> None:
        url = urlsplit(info.broker_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 8883
        self.info = info
        self.cond = threading.Condition()
        self.events: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # uuid -> (status, code, progress)
        self.online: set[str] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleetsim-test-watcher")
        self.client.tls_set(ca_certs=info.ca_file, certfile=info.admin_cert, keyfile=info.admin_key)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: self.subscribed.set()

    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.subscribe([(f"{REALM}/+/{OTA}/#", 2), (f"{REALM}/+/{BASE}/version", 2)])
        self.client.loop_start()
        assert self.subscribed.wait(10.0)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[1]
        with self.cond:
            if f"/{BASE}/" in msg.topic:
                self.online.add(device)
            else:
                v = bson.loads(msg.payload)["v"]
                self.events[v["requestUUID"]].append((v["status"], v["statusCode"], v["statusProgress"]))
            self.cond.notify_all()

    def wait_for(self, predicate: object, what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout=WAIT_S), f"timed out waiting for {what}: {self.events}"  # type: ignore[arg-type]

    def statuses(self, request: str) -> list[tuple[str, str]]:
        with self.cond:
            return [(s, c) for s, c, _p in self.events[request]]

    def publish(self, device: str, operation: str, request: str, qos: int) -> None:
        payload = bson.dumps({"v": {"operation": operation, "url": "https://img.invalid/x.raucb", "uuid": request}})
        self.client.publish(f"{REALM}/{device}/{REQ}/request", payload, qos=qos).wait_for_publish(10.0)

    def mosquitto_pub(self, device: str, operation: str, request: str) -> None:
        """The README's by-hand path: `fleetsim otarequest ... | mosquitto_pub -q 0 -s ...`."""
        payload = subprocess.run([sys.executable, "-m", "simulator", "otarequest", "--operation", operation,
                                  "--uuid", request, "--url", "https://img.invalid/x.raucb"],
                                 capture_output=True, check=True, timeout=60).stdout
        subprocess.run(["mosquitto_pub", "-h", self.host, "-p", str(self.port), "--cafile", self.info.ca_file,
                        "--cert", self.info.admin_cert, "--key", self.info.admin_key, "-i", "fleetsim-test-pub",
                        "-q", "0", "-s", "-t", f"{REALM}/{device}/{REQ}/request"],
                       input=payload, check=True, timeout=30)


def _final(watcher: Watcher, request: str) -> bool:
    return any(s in ("Success", "Failure") for s, _c, _p in watcher.events[request])


@pytest.mark.parametrize("transport", ["lean", "sdk"])
def test_responder_answers_requests_from_any_mqtt_client(tmp_path: Path, transport: str) -> None:
    require_service("mosquitto", binary="mosquitto")
    with EmbeddedBackend(tmp_path / "backend") as backend:
        info = backend.info
        assert info is not None
        target = tmp_path / "target.yaml"
        target.write_text(f"pairing_url: {info.pairing_url}\nrealm: {REALM}\nagent_jwt: {info.agent_jwt}\n"
                          f"ca_file: {info.ca_file}\n")
        scenario = tmp_path / "responder.yaml"
        scenario.write_text(SCENARIO.format(transport=transport))
        watcher = Watcher(info)
        watcher.start()
        results = tmp_path / "results"
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "run", str(scenario), "--target", str(target), "--results",
             str(results), "--state-dir", str(tmp_path / "st"), "--until-idle", "4", "--quiet"],
            cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            watcher.wait_for(lambda: len(watcher.online) == 3, "3 devices online")
            d0, d1, d2 = sorted(watcher.online)
            a, b, c, d, e = (str(uuid.uuid4()) for _ in range(5))
            # d0, by hand at QoS 0: an unknown-uuid Cancel, then an Update that runs to Success.
            watcher.mosquitto_pub(d0, "Cancel", e)
            watcher.wait_for(lambda: _final(watcher, e), "the unknown Cancel's answer")
            watcher.mosquitto_pub(d0, "Update", a)
            # d1 at QoS 1: an Update, a second Update while it runs, then the first uuid again.
            watcher.publish(d1, "Update", b, qos=1)
            watcher.wait_for(lambda: ("Acknowledged", "", 0) in watcher.events[b], "d1's Acknowledged")
            watcher.publish(d1, "Update", c, qos=1)
            watcher.wait_for(lambda: _final(watcher, c), "the second Update's answer")
            watcher.publish(d1, "Update", b, qos=1)
            # d2 at QoS 2: an Update, canceled while downloading.
            watcher.publish(d2, "Update", d, qos=2)
            watcher.wait_for(lambda: ("Acknowledged", "", 0) in watcher.events[d], "d2's Acknowledged")
            watcher.publish(d2, "Cancel", d, qos=2)
            watcher.wait_for(lambda: all(_final(watcher, u) for u in (a, b, d)), "every operation final")
            out, err = proc.communicate(timeout=WAIT_S * 2)  # --until-idle ends the run
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            watcher.stop()
    assert proc.returncode == 0, out + err
    assert "devices answer OTARequests from any sender" in err
    assert "no OTARequest in flight for 4 s" in err
    assert watcher.statuses(e) == [("Failure", "InternalError")]
    assert watcher.statuses(a)[0] == ("Acknowledged", "") and watcher.statuses(a)[-1] == ("Success", "")
    assert watcher.statuses(c) == [("Failure", "UpdateAlreadyInProgress")]
    assert watcher.statuses(b).count(("Acknowledged", "")) == 1, watcher.statuses(b)  # the re-sent uuid ignored
    assert watcher.statuses(b)[-1] == ("Success", "")
    assert watcher.statuses(d)[-1] == ("Failure", "Canceled")
    assert ("Success", "") not in watcher.statuses(d)

    summary = summary_of(only_run_dir(results))
    metrics = summary["extra"]["campaign_metrics"]  # type: ignore[index]
    assert metrics["driver"] == "none" and metrics["convergence"] is None
    assert metrics["operations"] == 4 and metrics["answered"] == 4  # a, b, c, d (e was a Cancel)
    assert metrics["retries_seen"] == 1 and metrics["operations_retried"] == 1  # b re-sent
    assert metrics["request_to_ack"]["count"] == 3  # a, b, d acknowledged; c refused outright
    assert metrics["request_to_final"]["count"] == 4
    assert 0 < metrics["request_to_ack"]["p50_ms"] < metrics["request_to_final"]["p50_ms"]
    assert metrics["peak_in_flight"] >= 2
