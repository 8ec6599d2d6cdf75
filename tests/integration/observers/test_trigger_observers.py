"""Trigger observers against real services: the local RabbitMQ (AMQP trigger action) and real HTTP posts
(webhook action), with messages shaped as Astarte sends them; and `fleetsim triggers --install` against a
loopback stand-in for Realm Management."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import bson
import pika
import pytest

from simulator.cli import main
from simulator.ids import device_id
from simulator.observers.amqp_trigger import AmqpTriggerObserver
from simulator.observers.simple_event import encode_simple_event
from simulator.observers.webhook_trigger import WebhookObserver

DEV = device_id(11, 0)
REQ = "0a0b0c0d-1111-4222-8333-444455556666"
OTA = "io.edgehog.devicemanager.OTAEvent"
WAIT_S = 10.0


def _bson(status: str, progress: int, t_ms: int) -> bytes:
    value = {
        "requestUUID": REQ,
        "status": status,
        "statusProgress": progress,
        "statusCode": "",
        "message": "",
    }
    t = dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC)
    out: bytes = bson.dumps({"v": value, "t": t})
    return out


def test_amqp_trigger_observer_records_ota_events(exchange: tuple[str, str]) -> None:
    url, name = exchange
    queue = f"fleetsim_test_{uuid.uuid4().hex[:10]}"
    observer = AmqpTriggerObserver(url, name, queue=queue, routing_key="fleetsim", realm="fleetsimtest")
    observer.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        channel = conn.channel()
        sent_ms = []
        for status, progress in (("Acknowledged", 0), ("Rebooting", 0), ("Rebooting", 0)):
            t_ms = int(time.time() * 1000)
            sent_ms.append(t_ms)
            body = encode_simple_event(
                realm="fleetsimtest",
                device_id=DEV,
                interface=OTA,
                path="/event",
                bson_value=_bson(status, progress, t_ms),
                timestamp_ms=t_ms,
            )
            headers = {
                "x_astarte_realm": "fleetsimtest",
                "x_astarte_device_id": DEV,
                "x_astarte_event_type": "incoming_data_event",
            }
            channel.basic_publish(name, "fleetsim", body, pika.BasicProperties(headers=headers))
        # Another realm's event and a device_connected event: seen, not counted as arrivals.
        channel.basic_publish(
            name, "fleetsim", b"\x22\x02qa", pika.BasicProperties(headers={"x_astarte_realm": "other"})
        )
        channel.basic_publish(
            name,
            "fleetsim",
            b"\x2a\x00",
            pika.BasicProperties(
                headers={"x_astarte_realm": "fleetsimtest", "x_astarte_event_type": "device_connected_event"}
            ),
        )
        conn.close()
        assert observer.book.wait_for(3, WAIT_S)
        received = time.time()
        records = observer.arrivals()
        assert [r.key for r in records] == [
            (DEV, REQ, "Acknowledged", 0, 0),
            (DEV, REQ, "Rebooting", 0, 0),
            (DEV, REQ, "Rebooting", 0, 1),
        ]
        assert [r.t_ms for r in records] == sent_ms
        for record in records:
            assert record.t_ms is not None
            latency = record.arrival - record.t_ms / 1000
            assert -0.002 <= latency <= received - record.t_ms / 1000 + 0.001  # loopback: ms, never negative
    finally:
        observer.stop()
    assert observer.book.ignored["other_realm"] == 1
    assert observer.book.ignored["event_type:device_connected_event"] == 1


def test_amqp_observer_reports_a_missing_exchange(rabbitmq: tuple[str, int]) -> None:
    from simulator.errors import UsageError

    host, port = rabbitmq
    observer = AmqpTriggerObserver(
        f"amqp://guest:guest@{host}:{port}/%2F", f"astarte_events_x_{uuid.uuid4().hex}"
    )
    with pytest.raises(UsageError, match=r"not found.*install the trigger first"):
        observer.start()


def _post(url: str, doc: dict[str, Any], realm: str = "fleetsimtest") -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(doc).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Astarte-Realm": realm},
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as resp:
        status: int = resp.status
        return status


def test_webhook_observer_records_posted_events() -> None:
    observer = WebhookObserver(host="127.0.0.1", port=0, path="/fleetsim/events", realm="fleetsimtest")
    observer.start()
    try:
        t_ms = int(time.time() * 1000)
        stamp = dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
        doc = {
            "timestamp": stamp.replace("+00:00", "Z"),
            "device_id": DEV,
            "trigger_name": "fleetsim",
            "event": {
                "type": "incoming_data",
                "interface": OTA,
                "path": "/event",
                "value": {
                    "requestUUID": REQ,
                    "status": "Downloading",
                    "statusProgress": 10,
                    "statusCode": "",
                    "message": "",
                },
            },
        }
        assert _post(observer.url, doc) == 200
        assert _post(observer.url, doc) == 200
        assert _post(observer.url, {**doc, "event": {"type": "device_connected"}}) == 200
        assert observer.book.wait_for(2, WAIT_S)
        first, second = observer.arrivals()
        assert first.key == (DEV, REQ, "Downloading", 10, 0) and second.key[4] == 1
        assert first.t_ms == t_ms
        assert 0 <= first.arrival - t_ms / 1000 < WAIT_S
    finally:
        observer.stop()
    assert observer.arrival_count() == 2 and observer.book.ignored["not_a_data_event"] == 1


class _RealmManagement(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _RealmManagement.received.append((self.path, self.headers["Authorization"], body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_triggers_install_posts_both_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RealmManagement)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _RealmManagement.received = []
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/realmmanagement"
        code = main(
            [
                "triggers",
                "--realm",
                "qa",
                "--install",
                "--token",
                "T0K",
                "--realm-management-url",
                base,
                "--webhook-url",
                "https://hooks.example.com/e",
            ]
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == 0
    paths = {p for p, _, _ in _RealmManagement.received}
    assert paths == {"/realmmanagement/v1/qa/triggers"}
    assert all(auth == "Bearer T0K" for _, auth, _ in _RealmManagement.received)
    amqp, hook = (body["data"] for _, _, body in _RealmManagement.received)
    assert amqp["action"]["amqp_exchange"] == "astarte_events_qa_fleetsim"
    assert hook["action"] == {"http_url": "https://hooks.example.com/e", "http_method": "post"}
    for trigger in (amqp, hook):
        assert trigger["simple_triggers"] == [
            {
                "type": "data_trigger",
                "on": "incoming_data",
                "interface_name": OTA,
                "interface_major": 0,
                "match_path": "/*",
                "value_match_operator": "*",
            }
        ]
    assert "installed fleetsim-ota-events-amqp (201)" in capsys.readouterr().out


def _ota_message(t_ms: int, status: str = "Acknowledged") -> tuple[bytes, pika.BasicProperties]:
    body = encode_simple_event(realm="fleetsimtest", device_id=DEV, interface=OTA, path="/event",
                               bson_value=_bson(status, 0, t_ms), timestamp_ms=t_ms)
    headers = {"x_astarte_realm": "fleetsimtest", "x_astarte_device_id": DEV,
               "x_astarte_event_type": "incoming_data_event"}
    return body, pika.BasicProperties(headers=headers)


def test_amqp_observer_fences_off_an_earlier_runs_queued_and_late_events(exchange: tuple[str, str]) -> None:
    """A named queue that outlived the last run holds its events (same seed => same keys): purged at the mark
    and counted; one of its events still in flight after the mark (its `t` before the run) is ignored too."""
    url, name = exchange
    queue = f"fleetsim_test_{uuid.uuid4().hex[:10]}"
    earlier_ms = int(time.time() * 1000) - 100_000  # the previous run, 100 s ago
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)
    channel.queue_bind(queue, name, routing_key="fleetsim")
    for status in ("Acknowledged", "Downloading"):
        channel.basic_publish(name, "fleetsim", *_ota_message(earlier_ms, status))
    observer = AmqpTriggerObserver(url, name, queue=queue, routing_key="fleetsim", realm="fleetsimtest")
    observer.start()
    try:
        fence = observer.fence
        assert fence is not None and fence.ignored_before == 2 and fence.kind == "trigger mark"
        channel.basic_publish(name, "fleetsim", *_ota_message(earlier_ms + 1))  # a straggler of that run
        now_ms = int(time.time() * 1000)
        channel.basic_publish(name, "fleetsim", *_ota_message(now_ms))  # this run's
        conn.close()
        assert observer.book.wait_for(1, WAIT_S)
        records = observer.arrivals()
        assert [(r.key, r.t_ms) for r in records] == [((DEV, REQ, "Acknowledged", 0, 0), now_ms)]
    finally:
        observer.stop()
    assert observer.book.ignored["before_run"] == 3 and observer.arrival_count() == 1
