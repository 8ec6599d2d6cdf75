"""The sdk transport against the embedded backend: real astarte-device-sdk 0.14.0, real mutual TLS, mosquitto.

Trust comes from Endpoint.ca_file only (no REQUESTS_CA_BUNDLE / SSL_CERT_FILE in the environment): the
transport's hooks hand the CA to requests (pairing) and to paho's tls_set (broker); verification stays on.
"""

from __future__ import annotations

import gc
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
import paho.mqtt.client as mqtt
import pytest
from astarte.device import generate_random_device_id

from simulator.backend.server import EmbeddedBackend
from simulator.backend_info import BackendInfo
from simulator.transports.base import Endpoint, PublishError
from simulator.transports.credentials import CredentialsCache
from simulator.transports.sdk import SdkConnectError, SdkFleet

pytestmark = pytest.mark.integration
IFACES = Path(__file__).resolve().parents[3] / "simulator" / "interfaces"
OTA_EVENT = "io.edgehog.devicemanager.OTAEvent"
OTA_REQUEST = "io.edgehog.devicemanager.OTARequest"


def ota_event(status: str = "Acknowledged", progress: int = 0) -> dict[str, Any]:
    return {"requestUUID": "7f4c3e0a-1111-4222-8333-944455556666", "status": status,
            "statusProgress": progress, "statusCode": "", "message": ""}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBackend]:
    from tests.conftest import require_service

    require_service("mosquitto", binary="mosquitto")
    b = EmbeddedBackend(tmp_path_factory.mktemp("backend"), realm="sdktest", broker="mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def info(backend: EmbeddedBackend) -> BackendInfo:
    assert backend.info is not None
    return backend.info


@pytest.fixture
def endpoint(info: BackendInfo) -> Endpoint:
    return Endpoint(realm=info.realm, pairing_url=info.pairing_url, agent_jwt=info.agent_jwt,
                    ca_file=info.ca_file)


@pytest.fixture
def cache(tmp_path: Path) -> CredentialsCache:
    return CredentialsCache(tmp_path / "credentials", "sdktest")


@pytest.fixture
def fleet(endpoint: Endpoint, cache: CredentialsCache) -> Iterator[SdkFleet]:
    f = SdkFleet(endpoint, IFACES, cache, connect_timeout=10.0)
    yield f
    f.stop()


@dataclass
class Admin:
    """The backend's admin identity as a plain paho client (plays Edgehog sending OTARequest)."""

    client: mqtt.Client
    messages: queue.Queue[tuple[str, bytes, int]]


@pytest.fixture
def admin(info: BackendInfo) -> Iterator[Admin]:
    messages: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
    ready = threading.Event()
    client_id = f"admin-{os.getpid()}-{time.monotonic_ns()}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.tls_set(ca_certs=info.ca_file, certfile=info.admin_cert, keyfile=info.admin_key)
    client.on_connect = lambda c, *_: c.subscribe(f"{info.realm}/+/{OTA_EVENT}/event", qos=2)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, m: messages.put((m.topic, m.payload, m.qos))
    client.connect(info.broker_host, info.broker_port)
    client.loop_start()
    try:
        assert ready.wait(10), "admin client did not subscribe"
        yield Admin(client, messages)
    finally:
        client.disconnect()
        client.loop_stop()


def _sdk_threads() -> list[str]:
    """paho loop threads of SDK devices: the SDK's client has an empty client id (device_mqtt.py), so the
    thread is named exactly "paho-mqtt-client-" (the collector's and the admin's carry their ids)."""
    return [t.name for t in threading.enumerate() if t.name == "paho-mqtt-client-"]


class Acks:
    """Collects on_ack calls; `wait(n)` blocks until n arrived (no sleeping)."""

    def __init__(self) -> None:
        self.got: list[tuple[float, str | None]] = []
        self._cond = threading.Condition()

    def __call__(self, acked_at: float, error: str | None) -> None:
        with self._cond:
            self.got.append((acked_at, error))
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.got) >= n, timeout)


def test_devices_connect_publish_qos2_with_ack_times_and_receive_ota_request(
    fleet: SdkFleet, admin: Admin, info: BackendInfo, backend: EmbeddedBackend
) -> None:
    before = backend.stats()["pairing"]["requests"].get("register", 0)
    transports = [fleet.transport(generate_random_device_id()) for _ in range(3)]
    for t in transports:
        times = t.connect()
        assert t.connected
        assert times.registration is not None and times.registration > 0
        assert times.certificate is not None and times.certificate > 0
        assert times.pairing_info is not None and times.pairing_info > 0
        assert times.connect is not None and times.connect > 0
        assert times.handshake is not None and times.handshake >= 0
        assert not times.session_present
        assert "http_certificate" in times.extra
    assert backend.stats()["pairing"]["requests"]["register"] == before + 3

    acks = Acks()
    sent_at = time.monotonic()
    t_ms = int(time.time() * 1000)
    for t in transports:
        t.publish(OTA_EVENT, "/event", ota_event("Downloading", 10), t_ms, acks)
    assert acks.wait(3), f"only {len(acks.got)} of 3 PUBCOMPs"
    assert all(err is None and sent_at <= at <= time.monotonic() for at, err in acks.got)
    assert all(t.unacked == 0 for t in transports)

    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < 3:
        topic, payload, qos = admin.messages.get(timeout=10)
        assert qos == 2  # OTAEvent is `unique` => QoS 2 (docs/protocol.md section 1)
        doc = bson.loads(payload)
        seen[topic.split("/")[1]] = doc
    assert set(seen) == {t.device_id for t in transports}
    for doc in seen.values():
        assert doc["v"] == ota_event("Downloading", 10)
        assert int(doc["t"].timestamp() * 1000) == t_ms  # the device's `t`, millisecond precision

    # Server -> device: Edgehog publishes OTARequest (QoS 0, no reliability: docs/protocol.md section 5).
    received: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    target = transports[1]
    target.on_data(lambda iface, path, value: received.put((iface, path, value)))
    request = {"operation": "Update", "url": "https://example.invalid/img.bin", "uuid": "a-uuid"}
    topic = f"{info.realm}/{target.device_id}/{OTA_REQUEST}/request"
    admin.client.publish(topic, bson.dumps({"v": request}), 0)
    assert received.get(timeout=10) == (OTA_REQUEST, "/request", request)

    with pytest.raises(PublishError) as bad:
        transports[0].publish(OTA_EVENT, "/event", {"requestUUID": "x"}, t_ms)  # four leaves missing
    assert bad.value.reason == "validation"
    transports[0].set_property("io.edgehog.devicemanager.BaseImage", "/version", "1.0.0")


def test_reconnect_uses_cached_credentials_without_registering_again(
    endpoint: Endpoint, cache: CredentialsCache, backend: EmbeddedBackend
) -> None:
    device_id = generate_random_device_id()
    first = SdkFleet(endpoint, IFACES, cache, connect_timeout=10.0)
    try:
        assert first.transport(device_id).connect().registration is not None
    finally:
        first.stop()
    requests = dict(backend.stats()["pairing"]["requests"])
    key_file = cache.key_path(device_id)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = key_file.read_bytes()

    second = SdkFleet(endpoint, IFACES, cache, connect_timeout=10.0)
    try:
        t = second.transport(device_id)
        times = t.connect()
        assert t.connected
        assert times.registration is None
        assert "http_verify" in times.extra and "http_certificate" not in times.extra
        after = backend.stats()["pairing"]["requests"]
        assert after["register"] == requests["register"]  # no second registration
        assert after.get("credentials") == requests.get("credentials")  # no new CSR
        assert after["verify"] == requests.get("verify", 0) + 1  # the SDK verified the cached certificate
        assert key_file.read_bytes() == key
    finally:
        second.stop()


def test_lost_secret_of_a_registered_device_is_one_clear_error(
    endpoint: Endpoint, cache: CredentialsCache, tmp_path: Path
) -> None:
    device_id = generate_random_device_id()
    fleet = SdkFleet(endpoint, IFACES, cache, connect_timeout=10.0)
    try:
        fleet.transport(device_id).connect()
    finally:
        fleet.stop()
    empty = CredentialsCache(tmp_path / "other", "sdktest")
    with pytest.raises(SdkConnectError, match="already registered"):
        SdkFleet(endpoint, IFACES, empty).transport(device_id).connect()


def test_disconnect_while_connecting_leaves_no_thread(
    fleet: SdkFleet, backend: EmbeddedBackend
) -> None:
    pairing = backend.pairing
    assert pairing is not None
    with socket.socket() as probe:  # a loopback port with nothing listening: paho keeps retrying
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    saved = pairing.broker_url
    pairing.broker_url = f"mqtts://127.0.0.1:{dead_port}/"
    try:
        t = SdkFleet(fleet._endpoint, IFACES, fleet._cache, connect_timeout=0.5).transport(
            generate_random_device_id())
        with pytest.raises(SdkConnectError, match="not connected within"):
            t.connect()
        assert not t.connected
        assert not _sdk_threads()
        t.disconnect()  # idempotent
    finally:
        pairing.broker_url = saved


def test_hundred_devices_work_with_fds_above_1024(fleet: SdkFleet) -> None:
    # Push every new fd past select()'s FD_SETSIZE (1024): paho's own select() would fail for all of them.
    gc.collect()  # free what earlier tests left for the GC, so no low fd is released mid-test
    dummies = [os.open(os.devnull, os.O_RDONLY)]
    while dummies[-1] < 1100:  # fills every free slot below 1100, holes included
        dummies.append(os.open(os.devnull, os.O_RDONLY))
    try:
        transports = [fleet.transport(generate_random_device_id()) for _ in range(100)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: t.connect(), transports))
        assert all(t.connected for t in transports)
        fds = [t._client.socket().fileno() for t in transports]
        assert min(fds) >= 1024
        acks = Acks()
        now_ms = int(time.time() * 1000)
        for t in transports:
            t.publish(OTA_EVENT, "/event", ota_event(), now_ms, acks)
        assert acks.wait(100, timeout=20), f"{len(acks.got)} of 100 acked"
        assert {err for _at, err in acks.got} == {None}
        fleet.stop()
        assert not any(t.connected for t in transports)
        assert not _sdk_threads()
    finally:
        for fd in dummies:
            os.close(fd)


def test_reboot_cycles_do_not_leak_fds_or_threads(fleet: SdkFleet) -> None:
    t = fleet.transport(generate_random_device_id())
    t.connect()
    t.disconnect()
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):  # a reboot = disconnect, then a fresh DeviceMqtt connects (the SDK calls /verify)
        times = t.connect()
        assert times.registration is None and "http_verify" in times.extra
        t.disconnect()
        assert not t.connected
    assert len(os.listdir("/proc/self/fd")) <= before
    assert not _sdk_threads()


_GEVENT_CHILD = r"""
from gevent import monkey
monkey.patch_all()
import json, os, select, sys, time
import gevent, gevent.event, gevent.select
import paho.mqtt.client as paho_client
from astarte.device import generate_random_device_id
from simulator.transports.base import Endpoint, PublishError
from simulator.transports.credentials import CredentialsCache
from simulator.transports.sdk import SdkFleet
from simulator.transports.sdk_patches import poll_select

info = json.loads(sys.argv[1])
endpoint = Endpoint(realm=info["realm"], pairing_url=info["pairing_url"], agent_jwt=info["agent_jwt"],
                    ca_file=info["ca_file"])
dummies = [os.open(os.devnull, os.O_RDONLY)]
while dummies[-1] < 1100:
    dummies.append(os.open(os.devnull, os.O_RDONLY))
fleet = SdkFleet(endpoint, sys.argv[2], CredentialsCache(sys.argv[3], "gevent"), connect_timeout=10.0)
transports = [fleet.transport(generate_random_device_id()) for _ in range(5)]
gevent.joinall([gevent.spawn(t.connect) for t in transports], timeout=30, raise_error=True)
connected = sum(t.connected for t in transports)
acks = []
done = gevent.event.Event()
def on_ack(at, err):
    acks.append(err)
    if len(acks) == len(transports):
        done.set()
event = {"requestUUID": "u", "status": "Acknowledged", "statusProgress": 0, "statusCode": "", "message": ""}
for t in transports:
    t.publish("io.edgehog.devicemanager.OTAEvent", "/event", event, int(time.time() * 1000), on_ack)
done.wait(10)
fds = [t._client.socket().fileno() for t in transports]
fleet.stop()
print(json.dumps({
    "connected": connected, "acks": acks, "min_fd": min(fds),
    "shim": paho_client.select.select is poll_select, "gevent_poll": select.poll is gevent.select.poll,
    "still_connected": sum(t.connected for t in transports),
}))
"""


def test_works_after_gevent_monkey_patch_all(info: BackendInfo, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", _GEVENT_CHILD, info.to_json(), str(IFACES),
         str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["shim"] and result["gevent_poll"]
    assert result["connected"] == 5
    assert result["acks"] == [None] * 5
    assert result["min_fd"] >= 1024  # gevent's own select() would fail here too (docs/protocol.md section 7)
    assert result["still_connected"] == 0
