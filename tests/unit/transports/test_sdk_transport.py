"""SdkTransport without a backend: errors are one clear line, nothing starts a thread."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

from simulator.transports.base import Endpoint, PublishError
from simulator.transports.credentials import CredentialsCache, DeviceCredentials
from simulator.transports.sdk import SDK_COMFORT_DEVICES, SdkConnectError, SdkFleet, load_interfaces

IFACES = Path(__file__).resolve().parents[3] / "simulator" / "interfaces"
DEVICE = "G5wrq1g9RA-mXav7_x4jAg"


def _dead_url() -> str:
    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{probe.getsockname()[1]}/pairing"


def test_publish_before_connect_is_a_disconnected_publish_error(tmp_path: Path) -> None:
    fleet = SdkFleet(Endpoint("r", _dead_url(), "jwt"), IFACES, CredentialsCache(tmp_path, "t"))
    t = fleet.transport(DEVICE)
    assert not t.connected
    with pytest.raises(PublishError) as err:
        t.publish("io.edgehog.devicemanager.OTAEvent", "/event", {}, None)
    assert err.value.reason == "disconnected"
    with pytest.raises(PublishError):
        t.set_property("io.edgehog.devicemanager.BaseImage", "/version", "1.0.0")
    t.disconnect()  # never connected: a no-op
    fleet.stop()
    assert fleet.comfort_devices == SDK_COMFORT_DEVICES == 300


def test_unreachable_pairing_api_is_one_clear_error_and_leaves_no_thread(tmp_path: Path) -> None:
    url = _dead_url()
    fleet = SdkFleet(Endpoint("r", url, "jwt"), IFACES, CredentialsCache(tmp_path, "t"))
    before = threading.active_count()
    with pytest.raises(SdkConnectError, match=re.escape(f"device {DEVICE}: registration at {url} failed")):
        fleet.transport(DEVICE).connect()
    cache = CredentialsCache(tmp_path, "t2")
    cache.put(DEVICE, DeviceCredentials("secret"))  # cached secret: no registration, straight to the SDK
    with pytest.raises(SdkConnectError, match=r"onboarding .* failed"):
        SdkFleet(Endpoint("r", url, "jwt"), IFACES, cache).transport(DEVICE).connect()
    assert threading.active_count() == before


def test_interfaces_dir_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SdkConnectError, match="interfaces directory not found"):
        load_interfaces(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SdkConnectError, match=r"bad\.json: not a readable interface JSON"):
        load_interfaces(tmp_path)
    (tmp_path / "bad.json").write_text('{"name": 1}')
    with pytest.raises(SdkConnectError, match=r"bad\.json: interface_name: missing"):
        load_interfaces(tmp_path)
    names = {doc["interface_name"] for doc in load_interfaces(IFACES)}
    assert {"io.edgehog.devicemanager.OTAEvent", "io.edgehog.devicemanager.OTARequest"} <= names
