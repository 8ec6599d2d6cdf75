"""Issue 14 against a trigger observer in distributed mode: the master forwards each worker its devices' arrivals.

A live embedded backend is the target the way a real Astarte is (a target file with an AMQP observer), and a
relay plays Astarte's AMQP trigger: an admin MQTT client sees every device's OTAEvent on the broker and
publishes it, as data_updater_plant's SimpleEvent, to an events exchange on the local RabbitMQ. The same
self-driven plan runs in one process (it joins live against its own observer) and with --processes 2 (the
master forwards, each worker joins its partition): the books agree, and no worker's final message carries
per-event rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import bson
import paho.mqtt.client as mqtt
import pika
import pytest

from simulator.backend.server import BackendInfo, EmbeddedBackend
from simulator.observers.simple_event import encode_simple_event
from tests.conftest import require_service
from tests.integration.engine.conftest import TINY, only_run_dir, summary_of

pytestmark = pytest.mark.integration
REALM = "fleetsim"
OTA = "io.edgehog.devicemanager.OTAEvent"


class Relay:
    """Astarte's AMQP trigger action, played from the broker: each OTAEvent becomes a SimpleEvent."""

    def __init__(self, info: BackendInfo, amqp_url: str, exchange: str) -> None:
        url = urlsplit(info.broker_url)
        self.amqp_url, self.exchange = amqp_url, exchange
        self.inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleetsim-test-relay")
        self.client.tls_set(ca_certs=info.ca_file, certfile=info.admin_cert, keyfile=info.admin_key)
        self.client.on_message = lambda _c, _u, msg: self.inbox.put((msg.topic, msg.payload))
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 8883
        self.relayed = 0
        self._thread = threading.Thread(target=self._publish, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.subscribe(f"{REALM}/+/{OTA}/#", qos=2)
        self.client.loop_start()
        assert self.subscribed.wait(10.0)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.inbox.put(None)
        self._thread.join(timeout=10.0)

    def _publish(self) -> None:  # pika's BlockingConnection belongs to one thread: this one
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        channel = conn.channel()
        try:
            while (item := self.inbox.get()) is not None:
                topic, payload = item
                _realm, device, interface, path = topic.split("/", 3)
                t = bson.loads(payload).get("t")
                t_ms = round(t.replace(tzinfo=dt.UTC).timestamp() * 1000) if isinstance(t, dt.datetime) else None
                body = encode_simple_event(realm=REALM, device_id=device, interface=interface, path=f"/{path}",
                                           bson_value=payload, timestamp_ms=t_ms)
                headers = {"x_astarte_realm": REALM, "x_astarte_device_id": device,
                           "x_astarte_event_type": "incoming_data_event"}
                channel.basic_publish(self.exchange, "fleetsim", body, pika.BasicProperties(headers=headers))
                self.relayed += 1
        finally:
            conn.close()


def _run(tmp_path: Path, name: str, scenario: Path, target: Path, processes: int) -> dict[str, object]:
    results = tmp_path / f"results-{name}"
    state = tmp_path / "st"  # one credentials cache for both runs: the same devices, registered once
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(scenario), "--target", str(target), "--results",
         str(results), "--state-dir", str(state), "--processes", str(processes), "--quiet"],
        cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(results)
    summary = summary_of(run_dir)
    with (run_dir / "events.sent.csv").open(newline="") as f:
        summary["sent_rows"] = sum(1 for _ in csv.reader(f)) - 1  # the header
    assert not (results / ".spool").exists()  # the workers' spooled logs were merged into the run's folder
    return summary


def test_workers_join_forwarded_trigger_arrivals(tmp_path: Path, exchange: tuple[str, str]) -> None:
    require_service("mosquitto", binary="mosquitto")
    amqp_url, name = exchange
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY.format(seed=11, devices=6))
    with EmbeddedBackend(tmp_path / "backend") as backend:
        info = backend.info
        assert info is not None
        target = tmp_path / "target.yaml"
        target.write_text(f"pairing_url: {info.pairing_url}\nrealm: {REALM}\nagent_jwt: {info.agent_jwt}\n"
                          f"ca_file: {info.ca_file}\n"
                          f"observer: {{kind: amqp, url: '{amqp_url}', exchange: {name}}}\n")
        relay = Relay(info, amqp_url, name)
        relay.start()
        try:
            single = _run(tmp_path, "single", scenario, target, processes=1)
            split = _run(tmp_path, "split", scenario, target, processes=2)
        finally:
            relay.stop()
    events_single, events_split = single["events"], split["events"]
    assert isinstance(events_single, dict) and isinstance(events_split, dict)
    assert events_single["sent"] == events_split["sent"] > 0
    for key in ("sent", "delivered", "lost", "duplicated", "unexpected", "late"):
        assert events_split[key] == events_single[key], (key, events_single, events_split)
    assert events_split["delivered"] == events_split["sent"] and events_split["lost"] == 0
    assert split["sent_rows"] == single["sent_rows"] == events_split["sent"]
    ota_single, ota_split = single["ota"], split["ota"]
    assert isinstance(ota_single, dict) and isinstance(ota_split, dict)
    for key in ("operations", "success", "failure", "stuck", "cut"):  # the funnel's counts (not its timings)
        assert ota_split[key] == ota_single[key], (key, ota_single, ota_split)
    workers = split["extra"]["workers"]  # type: ignore[index]
    assert len(workers) == 2
    for worker in workers:
        parts = worker["final_parts"]
        assert "send_log" not in parts and "books" in parts, parts  # aggregates only: no per-event rows
        assert 0 < worker["final_bytes"] < 1_000_000
