"""Ceiling of the pip-only amqtt broker: TLS devices held, QoS 2 OTAEvent messages/s to one admin subscriber.

Usage: python bench/broker_amqtt.py [--devices 200] [--seconds 5] [--window 1]

Starts AmqttBroker (subprocess) with a LocalCA in a temporary directory, connects N paho clients over mutual
TLS with their own device certificates (client id `<realm>/<device_id>`), and one admin subscriber on
`<realm>/#` at QoS 2. Every device keeps `window` QoS 2 publishes of a real ~153-byte BSON OTAEvent
(docs/protocol.md section 1) in flight (closed loop: the next one leaves on PUBCOMP), so the delivered rate is
the broker's ceiling. All clients share one selector-driven thread (no paho thread per device), which keeps
the generator's CPU low. Run it on an otherwise idle machine: a starved broker or generator reads as a low
ceiling.
Prints one JSON object: connect time, broker RSS per connection, delivered msgs/s, publish->delivery latency
percentiles, and the CPU the broker and the generator used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import selectors
import shutil
import socket
import ssl
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import bson
import paho.mqtt.client as mqtt
import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.backend.amqtt_broker import AmqttBroker
from simulator.backend.broker import ADMIN_CN, BrokerConfig
from simulator.backend.ca import LocalCA

REALM = "bench"
TOPIC = "io.edgehog.devicemanager.OTAEvent/event"


def payload(seq: int) -> bytes:
    """A real OTAEvent object aggregate whose requestUUID carries the sequence number (for latency)."""
    event = {
        "requestUUID": str(uuid.UUID(int=seq)),
        "status": "Downloading",
        "statusProgress": 50,
        "statusCode": "",
        "message": "",
    }
    data: bytes = bson.dumps({"v": event, "t": dt.datetime.now(dt.UTC)})
    return data


def device_cert(ca: LocalCA, directory: Path, dev: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cn = f"{REALM}/{dev}"
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ).sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{dev}.crt", directory / f"{dev}.key"
    cert_path.write_bytes(ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM), cn))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_path, key_path


class Loop:
    """One thread driving many paho clients through paho's external-loop API (loop_read/loop_write/misc)."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.clients: list[mqtt.Client] = []

    def add(self, client: mqtt.Client, host: str, port: int) -> None:
        client.connect(host, port, keepalive=60)  # blocking TCP + TLS handshake
        sock = client.socket()
        # paho 2.2 leaves Nagle on: small PUBREC/PUBREL/PUBCOMP writes then wait for delayed ACKs (~40 ms
        # each), which caps a QoS 2 closed loop far below the broker's ceiling. asyncio (amqtt) sets NODELAY.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sel.register(sock, selectors.EVENT_READ, client)
        self.clients.append(client)

    def turn(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            client: mqtt.Client = key.data
            client.loop_read()
            sock = client.socket()
            while sock is not None and isinstance(sock, ssl.SSLSocket) and sock.pending():
                client.loop_read()
        for client in self.clients:
            if client.want_write():
                client.loop_write()

    def misc(self) -> None:
        for client in self.clients:
            client.loop_misc()


def run(devices: int, seconds: float, window: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-amqtt-"))
    ca = LocalCA(work)
    ca.ensure()
    server_cert, server_key = ca.server_cert()
    broker = AmqttBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, server_cert, server_key, REALM,
                                      verbose_log=False))
    broker.start()
    try:
        assert broker.pid is not None
        child = psutil.Process(broker.pid)
        rss_idle = child.memory_info().rss
        loop = Loop()
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        delivered = [0]

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            seq = uuid.UUID(bson.loads(msg.payload)["v"]["requestUUID"]).int
            t0 = sent_at.pop(seq, None)
            if t0 is not None:
                latencies.append(time.perf_counter() - t0)
            delivered[0] += 1

        admin_cert, admin_key = ca.issue_client_cert(ADMIN_CN)
        admin = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-admin", protocol=mqtt.MQTTv311)
        ctx = ssl.create_default_context(cafile=str(ca.ca_cert_path))
        ctx.load_cert_chain(str(admin_cert), str(admin_key))
        admin.tls_set_context(ctx)
        admin.on_message = on_message
        loop.add(admin, "127.0.0.1", broker.port)
        admin.subscribe(f"{REALM}/#", qos=2)

        ready: deque[int] = deque()
        seq = [0]
        acked = [0]

        def on_publish(_c: Any, idx: int, _mid: int, _rc: Any, _p: Any) -> None:
            acked[0] += 1
            ready.append(idx)

        clients: list[mqtt.Client] = []
        t_connect = time.perf_counter()
        for i in range(devices):
            dev = f"dev{i:05d}"
            cert, key = device_cert(ca, work, dev)
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=f"{REALM}/{dev}", protocol=mqtt.MQTTv311
            )
            dctx = ssl.create_default_context(cafile=str(ca.ca_cert_path))
            dctx.load_cert_chain(str(cert), str(key))
            c.tls_set_context(dctx)
            c.user_data_set(i)
            c.on_publish = on_publish
            loop.add(c, "127.0.0.1", broker.port)
            clients.append(c)
            loop.turn(0)
        deadline = time.monotonic() + 60
        while not all(c.is_connected() for c in clients) and time.monotonic() < deadline:
            loop.turn(0.05)
        connect_s = time.perf_counter() - t_connect
        connected = sum(c.is_connected() for c in clients)
        rss_connected = child.memory_info().rss

        for i in range(devices):
            ready.extend([i] * window)

        def publish_ready() -> None:
            while ready:
                idx = ready.popleft()
                seq[0] += 1
                sent_at[seq[0]] = time.perf_counter()
                clients[idx].publish(f"{REALM}/dev{idx:05d}/{TOPIC}", payload(seq[0]), qos=2)

        warm_end = time.monotonic() + 1.0
        while time.monotonic() < warm_end:
            publish_ready()
            loop.turn(0.005)
        latencies.clear()
        start_count, start_acked, t0 = delivered[0], acked[0], time.monotonic()
        child.cpu_percent(None)
        cpu0 = time.process_time()
        next_misc = t0 + 1.0
        while (now := time.monotonic()) < t0 + seconds:
            publish_ready()
            loop.turn(0.005)
            if now >= next_misc:
                loop.misc()
                next_misc = now + 1.0
        elapsed = time.monotonic() - t0
        rate = (delivered[0] - start_count) / elapsed
        acked_rate = (acked[0] - start_acked) / elapsed
        broker_cpu = child.cpu_percent(None)
        gen_cpu = 100.0 * (time.process_time() - cpu0) / elapsed
        latencies.sort()

        def pct(p: float) -> float:
            if not latencies:
                return -1.0
            return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

        return {
            "broker": broker.name,
            "devices_requested": devices,
            "devices_connected": connected,
            "connect_s": round(connect_s, 2),
            "broker_rss_idle_mb": round(rss_idle / 2**20, 1),
            "broker_rss_connected_mb": round(rss_connected / 2**20, 1),
            "broker_kb_per_connection": round((rss_connected - rss_idle) / 1024 / max(1, connected), 1),
            "payload_bytes": len(payload(1)),
            "inflight_per_device": window,
            "measure_s": round(elapsed, 2),
            "acked_qos2_msgs_per_s": round(acked_rate, 1),
            "delivered_qos2_msgs_per_s": round(rate, 1),
            "latency_ms_p50": pct(0.50),
            "latency_ms_p99": pct(0.99),
            "latency_ms_max": round(1000 * latencies[-1], 2) if latencies else -1,
            "broker_cpu_percent": round(broker_cpu, 1),
            "generator_cpu_percent": round(gen_cpu, 1),
            "refusals": broker.refusals(),
        }
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement window after 1 s warm-up")
    parser.add_argument("--window", type=int, default=1, help="QoS 2 publishes in flight per device")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import stamped

    print(json.dumps(stamped("broker_amqtt", run(args.devices, args.seconds, args.window), argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
