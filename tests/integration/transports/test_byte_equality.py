"""The lean transport puts the same bytes on the wire as the unmodified SDK (issue 4): the same script through
both transports, captured by an admin subscriber on the embedded backend's broker, compared message by message:
topic (device id aside), QoS, payload bytes, and the handshake's order."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.backend.server import EmbeddedBackend
from simulator.ids import device_id
from tests.conftest import require_service
from tests.integration.backend.tls_helpers import MqttClient

CHILD = Path(__file__).with_name("script_child.py")


def _capture(admin: MqttClient, realm: str, dev: str, cfg: dict[str, str], info_json: str,
             tmp: Path) -> list[tuple[str, int, bytes]]:
    proc = subprocess.run([sys.executable, str(CHILD), info_json, json.dumps({**cfg, "device_id": dev,
                                                                               "credentials_dir": str(tmp)})],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["acks"] == [None, None, None]
    out: list[tuple[str, int, bytes]] = []
    marker = f"{realm}/{dev}"
    while True:  # the broker forwarded everything before the child's PUBCOMPs and DISCONNECT
        try:
            topic, payload, qos = admin.messages.get(timeout=3)
        except queue.Empty:
            break
        if topic == marker or topic.startswith(marker + "/"):
            out.append((topic.replace(dev, "<device>"), qos, payload))
    return out


def test_lean_and_sdk_send_identical_bytes(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    backend = EmbeddedBackend(tmp_path / "backend", realm="fleetsim", broker="mosquitto")
    info = backend.start()
    admin = MqttClient(Path(info.ca_file), Path(info.admin_cert), Path(info.admin_key), "byte-equality")
    try:
        assert admin.start(info.broker_port)
        admin.client.subscribe("fleetsim/#", qos=2)
        assert admin.subscribed.wait(5)
        captured = {}
        for index, transport in enumerate(("sdk", "lean")):
            dev = device_id(77, index)
            captured[transport] = _capture(admin, info.realm, dev, {"transport": transport}, info.to_json(),
                                           tmp_path / transport)
    finally:
        admin.stop()
        backend.stop()
    sdk, lean = captured["sdk"], captured["lean"]
    kinds = [t.split("/", 2)[-1] if t.count("/") > 1 else "introspection" for t, _, _ in sdk]
    # The whole conversation: handshake (introspection, emptyCache, producer properties), two properties, three
    # OTAEvents, the unset -- in this order for both.
    assert kinds[0] == "introspection" and "control/emptyCache" in kinds and kinds.count(
        "io.edgehog.devicemanager.OTAEvent/event") == 3, kinds
    if sdk != lean:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(sdk, lean, strict=False)) if a != b]
        pytest.fail(f"{len(sdk)} vs {len(lean)} messages; first differences: {diff[:3]}")
