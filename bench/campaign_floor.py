"""The floor of bench/campaign_capacity.py: bare paho doing a rebooting OTA operation's message sequence.

No gevent, no fleetsim device, no recorder: one selector loop over `concurrency` provisioned devices, each a
small state machine. Per operation: 25 OTAEvents at QoS 2 (Acknowledged .. Rebooting, each sent when the
previous one is acknowledged), DISCONNECT, the Pairing API's verify + info on one keep-alive
`requests.Session` (what the SDK calls on every connect), reconnect (TCP + full TLS handshake with the
device certificate), the Astarte handshake (subscriptions, introspection, emptyCache, the device's
properties, producer/properties; all acknowledged), BaseImage/OSInfo with the new version, Success. CPU of
the whole child (user + system) over the operations, after the devices first connected.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["run_floor"]

STEPS_BEFORE_REBOOT = 25  # Acknowledged, 11 Downloading, 11 Deploying, Deployed, Rebooting
FLOOR_CONCURRENCY = 50


def run_floor(info: dict[str, Any], creds: str, ids: list[str], operations: int) -> dict[str, Any]:
    """Run the floor in a child process (a clean interpreter: no gevent patching); its RESULT dict."""
    from bench.common import run_child

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"info": info, "credentials_dir": creds, "ids": ids[:FLOOR_CONCURRENCY],
                   "operations": operations}, f)
    try:
        return run_child([str(Path(__file__).resolve()), f.name], timeout_s=600)
    finally:
        Path(f.name).unlink()


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import os
    import selectors
    import ssl
    import time
    from urllib.parse import urlparse

    import paho.mqtt.client as mqtt
    import requests
    from paho.mqtt.enums import CallbackAPIVersion

    from bench.common import cpu_seconds, tls_context
    from simulator.device import startup_properties
    from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH
    from simulator.interfaces.loader import load_interfaces
    from simulator.lifecycle.plans import Firmware
    from simulator.transports import wire
    from simulator.transports.credentials import CredentialsCache, target_key

    info = spec["info"]
    realm = info["realm"]
    interfaces = wire.as_interfaces(load_interfaces())
    introspection = wire.introspection_payload(interfaces.values())
    cache = CredentialsCache(Path(spec["credentials_dir"]), target_key(realm, info["pairing_url"]))
    broker = urlparse(info["broker_url"])
    session = requests.Session()
    base = f"{info['pairing_url'].rstrip('/')}/v1/{realm}"
    sel = selectors.DefaultSelector()
    total = spec["operations"]
    state: dict[str, Any] = {"done": 0, "started": 0, "messages": 0, "pairing": 0}
    payload = wire.encode_value({"requestUUID": "8c3a3f8c-6f53-4bb2-8f6f-2b6f3b5a1c11", "status": "Downloading",
                                 "statusProgress": 50, "statusCode": ""}, None)

    class Dev:
        def __init__(self, index: int, dev_id: str) -> None:
            self.id, self.index = dev_id, index
            creds = cache.get(dev_id)
            assert creds is not None and creds.cert_pem is not None, f"{dev_id} not provisioned"
            self.secret, self.cert = creds.secret, creds.cert_pem.decode("ascii")
            self.props = startup_properties(index, Firmware("fleetsim-os", "1.0.0", "b1"))
            self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
            self.c.tls_set_context(tls_context(info["ca_file"], cache.cert_path(dev_id), cache.key_path(dev_id)))
            self.c.on_connect, self.c.on_publish, self.c.on_subscribe = self.connected, self.acked, self.acked
            self.waiting: set[int] = set()
            self.phase, self.step, self.up = "handshake", 0, False
            self.topic = wire.data_topic(realm, dev_id, OTA_EVENT_INTERFACE, OTA_EVENT_PATH)

        def open(self) -> None:
            self.c.connect(broker.hostname or "127.0.0.1", broker.port or 8883, keepalive=60)
            sel.register(self.c.socket(), selectors.EVENT_READ | selectors.EVENT_WRITE, self)  # type: ignore

        def connected(self, c: Any, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
            self.phase, self.up = "handshake", True
            for topic in wire.handshake_subscriptions(realm, self.id, interfaces.values()):
                self.waiting.add(int(c.subscribe(topic, qos=2)[1] or 0))
            self.waiting.add(c.publish(wire.base_topic(realm, self.id), introspection, 2).mid)
            self.waiting.add(c.publish(wire.empty_cache_topic(realm, self.id), wire.EMPTY_CACHE_PAYLOAD, 2).mid)
            for name, path, value in self.props:
                topic = wire.data_topic(realm, self.id, name, path)
                self.waiting.add(c.publish(topic, wire.encode_value(value, None), 2).mid)
            paths = [name + path for name, path, _ in self.props]
            self.waiting.add(c.publish(wire.producer_properties_topic(realm, self.id),
                                       wire.producer_properties_payload(paths), 2).mid)
            state["messages"] += len(self.waiting)

        def acked(self, c: Any, _u: Any, mid: int, *_: Any) -> None:
            self.waiting.discard(mid)
            if not self.waiting:
                ready.append(self)

        def next(self) -> None:
            """The operation's next message once everything sent before is acknowledged."""
            c = self.c
            if self.phase == "handshake" and self.step == 0:
                if state["started"] >= total:
                    self.phase = "idle"
                    return
                state["started"] += 1
                self.phase = "events"
            if self.phase == "handshake":  # after the reboot: the new image, then Success
                self.phase = "final"
                for name, path, value in (("io.edgehog.devicemanager.BaseImage", "/version", "1.1.0"),
                                          ("io.edgehog.devicemanager.BaseImage", "/buildId", "b2"),
                                          ("io.edgehog.devicemanager.OSInfo", "/osVersion", "1.1.0")):
                    self.waiting.add(c.publish(wire.data_topic(realm, self.id, name, path),
                                               wire.encode_value(value, None), 2).mid)
                ts = wire.ms_to_datetime(int(time.time() * 1000))
                self.waiting.add(c.publish(self.topic, wire.encode_value(
                    {"requestUUID": "8c3a3f8c-6f53-4bb2-8f6f-2b6f3b5a1c11", "status": "Success",
                     "statusProgress": 100, "statusCode": ""}, ts), 2).mid)
                state["messages"] += 4
            elif self.phase == "final":
                state["done"] += 1
                self.phase, self.step = "handshake", 0
                self.next()
            elif self.step < STEPS_BEFORE_REBOOT:
                self.step += 1
                self.waiting.add(c.publish(self.topic, payload, 2).mid)
                state["messages"] += 1
            else:  # reboot: disconnect, pairing verify + info, reconnect with a new TLS handshake
                sel.unregister(c.socket())  # type: ignore[arg-type]
                c.disconnect()
                for path, body in ((f"/devices/{self.id}/protocols/astarte_mqtt_v1/credentials/verify",
                                    {"data": {"client_crt": self.cert}}), (f"/devices/{self.id}", None)):
                    res = session.request("POST" if body else "GET", base + path, json=body,
                                          headers={"Authorization": f"Bearer {self.secret}"},
                                          verify=info["ca_file"], timeout=30)
                    res.raise_for_status()
                    state["pairing"] += 1
                self.phase, self.step = "handshake", 1
                self.c.reconnect()
                sel.register(self.c.socket(), selectors.EVENT_READ | selectors.EVENT_WRITE, self)  # type: ignore
            self.sync()

        def sync(self) -> None:
            sock = self.c.socket()
            if sock is not None:
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.c.want_write() else 0)
                sel.modify(sock, want, self)  # type: ignore[arg-type]

    ready: list[Dev] = []
    devs = [Dev(i, d) for i, d in enumerate(spec["ids"])]
    for d in devs:
        d.open()

    def serve(play: bool = True) -> None:
        for key, mask in sel.select(0.05):
            d = key.data
            if mask & selectors.EVENT_READ:
                d.c.loop_read()
                sock = d.c.socket()
                while isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted bytes epoll won't report
                    d.c.loop_read()
            if mask & selectors.EVENT_WRITE:
                d.c.loop_write()
            d.sync()
        while ready and play:
            ready.pop().next()

    # First connect and handshake: not measured (the product's devices are online before its clock starts).
    t0 = time.monotonic()
    while any(d.waiting or not d.up for d in devs) and time.monotonic() - t0 < 60:
        serve(play=False)
    cpu0, wall0, msgs0 = cpu_seconds(), time.monotonic(), state["messages"]
    ready[:] = []
    for d in devs:
        d.waiting.clear()
        d.next()
    while state["done"] < total and time.monotonic() - wall0 < 600:
        serve()
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    done = state["done"]
    return {"operations": done, "devices": len(devs), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "cpu_ms_per_operation": round(cpu / max(1, done) * 1000, 3),
            "messages_per_operation": round((state["messages"] - msgs0) / max(1, done), 1),
            "pairing_calls": state["pairing"], "load_avg_1m": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import emit

    emit(_child(json.loads(Path(sys.argv[1]).read_text())))
