"""End-to-end latency through the trigger observers, exactly: Astarte-shaped events go through the real local
RabbitMQ (AMQP action) or a real HTTP POST (webhook action), are stamped by an injected clock, and are joined
with the send log by the accounting; e2e = arrival - sent and e2e_device_t = arrival - the device's `t`."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import bson
import pika

from simulator.ids import device_id
from simulator.metrics.accounting import account
from simulator.observers.amqp_trigger import AmqpTriggerObserver
from simulator.observers.simple_event import encode_simple_event
from simulator.observers.webhook_trigger import WebhookObserver
from simulator.records import ArrivalRecord, SendRecord

DEV = device_id(12, 3)
REQ = "1a0b0c0d-1111-4222-8333-444455556666"
OTA = "io.edgehog.devicemanager.OTAEvent"
WAIT_S = 10.0
ARRIVAL = 1_800_000_000.5  # the injected clock's wall time (s): every message is stamped with it
# (status, progress, device `t` in ms before ARRIVAL, sent in s before ARRIVAL): the device clock runs 5 ms
# behind the generator's, so e2e and e2e_device_t differ by exactly 5 ms.
EVENTS = (("Acknowledged", 0, 125, 0.120), ("Downloading", 0, 45, 0.040), ("Downloading", 10, 1505, 1.5))


class FixedClock:
    """The observer's clock, frozen: arrival times are known exactly."""

    def monotonic(self) -> float:
        return 0.0

    def wall(self) -> float:
        return ARRIVAL


def _value(status: str, progress: int) -> dict[str, object]:
    return {"requestUUID": REQ, "status": status, "statusProgress": progress, "statusCode": "", "message": ""}


def _t_ms(before_ms: int) -> int:
    return round(ARRIVAL * 1000) - before_ms


def _check_latencies(arrivals: list[ArrivalRecord]) -> None:
    sends = [SendRecord((DEV, REQ, s, p, 0), ARRIVAL - sent_before, ARRIVAL - sent_before, _t_ms(t_before),
                        ARRIVAL - sent_before + 0.001) for s, p, t_before, sent_before in EVENTS]
    acc = account(sends, arrivals, end=ARRIVAL + 1)
    assert (acc.delivered, acc.lost, acc.unexpected, acc.duplicated) == (3, 0, 0, 0)
    hists = acc.histograms()
    # The join keeps HDR histograms (3 significant digits), not per-event values: each expected latency sits
    # in its own bucket, once.
    for path, expected_s in (("e2e", [b for *_, b in EVENTS]), ("e2e_device_t", [t / 1000 for _, _, t, _ in EVENTS])):
        hist = hists.get(path)
        assert hist.count == len(EVENTS)
        for value in expected_s:
            assert hist.hist.get_count_at_value(round(value * 1_000_000)) == 1, (path, value)


def test_amqp_trigger_events_give_exact_e2e_latency(exchange: tuple[str, str]) -> None:
    url, name = exchange
    observer = AmqpTriggerObserver(url, name, routing_key="fleetsim", realm="fleetsimtest", clock=FixedClock())
    observer.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        channel = conn.channel()
        for status, progress, t_before, _ in EVENTS:
            t = dt.datetime.fromtimestamp(_t_ms(t_before) / 1000, tz=dt.UTC)
            body = encode_simple_event(realm="fleetsimtest", device_id=DEV, interface=OTA, path="/event",
                                       bson_value=bson.dumps({"v": _value(status, progress), "t": t}),
                                       timestamp_ms=_t_ms(t_before))
            headers = {"x_astarte_realm": "fleetsimtest", "x_astarte_device_id": DEV,
                       "x_astarte_event_type": "incoming_data_event"}
            channel.basic_publish(name, "fleetsim", body, pika.BasicProperties(headers=headers))
        conn.close()
        assert observer.book.wait_for(3, WAIT_S)
    finally:
        observer.stop()
    arrivals = observer.arrivals()
    assert [a.arrival for a in arrivals] == [ARRIVAL] * 3
    _check_latencies(arrivals)


def test_webhook_posts_give_exact_e2e_latency() -> None:
    observer = WebhookObserver(host="127.0.0.1", port=0, path="/hook", realm="fleetsimtest", clock=FixedClock())
    observer.start()
    try:
        for status, progress, t_before, _ in EVENTS:
            stamp = dt.datetime.fromtimestamp(_t_ms(t_before) / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
            doc = {"timestamp": stamp.replace("+00:00", "Z"), "device_id": DEV, "trigger_name": "fleetsim",
                   "event": {"type": "incoming_data", "interface": OTA, "path": "/event",
                             "value": _value(status, progress)}}
            request = urllib.request.Request(observer.url, data=json.dumps(doc).encode(), method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Astarte-Realm": "fleetsimtest"})
            with urllib.request.urlopen(request, timeout=WAIT_S) as resp:
                assert resp.status == 200
        assert observer.book.wait_for(3, WAIT_S)
    finally:
        observer.stop()
    _check_latencies(observer.arrivals())
