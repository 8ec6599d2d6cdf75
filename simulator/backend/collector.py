"""The embedded backend's observer: one MQTT client that sees every message of the realm and writes it down.

It plays the part of Astarte's data_updater_plant as far as a load test needs it (docs/protocol.md sections 1, 3):
subscribe to `<realm>/#` with the admin identity (mutual TLS, CN `fleetsim-admin`, ACL `readwrite #` from
simulator.backend.mosquitto), stamp the arrival time before anything else, validate with
simulator.backend.validation, and keep: the arrival log of OTAEvents (simulator.records.ArrivalRecord, joined
with the send log on simulator.events.EventKey), violations by kind with examples, the last value of every
device-owned property (BaseImage /version is what a campaign reads), per-device handshake state, messages by
kind and the QoS they were delivered with (mosquitto delivers min(pub QoS, sub QoS) = the publisher's QoS
here, since we subscribe at 2, so the QoS check is meaningful).

Threading: paho's own network thread (`loop_start`, one client: simulator.backend.collector_client, paho with a
one-recv reader and its QoS 2 receive steps taken off paho's generic path) calls `handle_message`; readers on
other threads take the same lock. Cost per OTAEvent: ~35 us of validation (py-bson decode ~16 us) on this machine,
well under the 333 us that 3,000 msg/s allows; `stats()["handler_us_mean"]` measures it live.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.backend.arrival_spool import ArrivalSpool, RecentKeyBook
from simulator.backend.collector_client import CollectorClient
from simulator.backend.validation import (
    KIND_PROPERTY,
    KIND_UNSET,
    Classified,
    HandshakeTracker,
    Validator,
)
from simulator.clock import Clock, MonotonicClock
from simulator.errors import UsageError
from simulator.events import OTA_EVENT_INTERFACE, EventKey
from simulator.interfaces.loader import load_interfaces
from simulator.records import ArrivalRecord

__all__ = ["Collector", "CollectorConfig", "Listener", "RunMark"]

# listener(message, arrival_wall_s): called on the network thread once the message is recorded; be quick.
Listener = Callable[[Classified, float], None]

_SUBSCRIBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CollectorConfig:
    """Where the broker is and who we are. Files are PEM paths from simulator.backend.ca.LocalCA."""

    host: str
    port: int
    ca_file: Path | str
    cert_file: Path | str
    key_file: Path | str
    realm: str
    interfaces_dir: Path | None = None
    client_id: str = "fleetsim-collector"
    max_examples: int = 200  # violation examples kept (oldest dropped first)
    strict_device_id: bool = True  # flag device ids that are not 22 chars of base64url
    keepalive_s: int = 30
    # Where the arrival log is written (the backend's state dir); None: kept in memory (tests).
    arrival_log: Path | None = None


@dataclass(frozen=True)
class RunMark:
    """Where a run begins in this collector's arrival log (POST /runs/mark): the fence of the run's join.

    `cursor` is the number of OTAEvent arrivals recorded before the mark (rows `cursor..` are the run's),
    `at` the collector's wall clock at the mark (s since the epoch; the caller's round trip around it
    measures the clock offset between the generator and this collector), `label` what the caller named it."""

    cursor: int
    at: float
    label: str = ""


_MARKS_KEPT = 16  # the last marks, for /stats (which runs used this long-lived backend, and where they began)


def _ota_key_fields(value: Any) -> tuple[str, str, int] | None:
    """(requestUUID, status, statusProgress) when the OTAEvent object carries them with the right types."""
    if not isinstance(value, dict):
        return None
    uuid, status, progress = value.get("requestUUID"), value.get("status"), value.get("statusProgress")
    if type(uuid) is str and type(status) is str and type(progress) is int:
        return uuid, status, progress
    return None


class Collector:
    """See the module docstring. `drop(key)` returning True discards that OTAEvent on purpose (tests of loss
    accounting); a dropped event still advances the occurrence count, so later events keep the sender's
    keys."""

    def __init__(
        self,
        config: CollectorConfig,
        clock: Clock | None = None,
        drop: Callable[[EventKey], bool] | None = None,
    ) -> None:
        self.config = config
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._drop = drop
        self._validator = Validator(config.realm, load_interfaces(config.interfaces_dir),
                                    strict_device_id=config.strict_device_id)
        self._cond = threading.Condition(threading.RLock())
        self._handshake = HandshakeTracker(self._validator)
        self._arrivals = ArrivalSpool(config.arrival_log)  # on disk: memory does not grow with events
        self._occurrences = RecentKeyBook()
        self._violations: Counter[str] = Counter()
        self._examples: deque[dict[str, object]] = deque(maxlen=config.max_examples)
        self._messages: Counter[str] = Counter()
        self._qos: Counter[tuple[str, int]] = Counter()  # (interface or kind, delivered QoS) -> messages
        self._notes: Counter[str] = Counter()
        self._properties: dict[str, dict[str, dict[str, object]]] = {}
        self._devices: set[str] = set()
        self._dropped = 0
        self._handler_s = 0.0
        self._handled = 0
        self._listeners: list[Listener] = []
        self._marks: deque[RunMark] = deque(maxlen=_MARKS_KEPT)
        self._client: mqtt.Client | None = None
        self._subscribed = threading.Event()
        self._connect_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout: float = _SUBSCRIBE_TIMEOUT_S) -> None:
        """Connect over mutual TLS and return once the broker acknowledged the `<realm>/#` subscription."""
        cfg = self.config
        # Acks gathered into one TLS record per write: mosquitto reads a record's packets in one pass (paho_batch);
        # one recv per wake-up and paho's QoS 2 receive steps without its generic layers (collector_client).
        client = CollectorClient(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, clean_session=True)
        client.tls_set(ca_certs=str(cfg.ca_file), certfile=str(cfg.cert_file), keyfile=str(cfg.key_file))
        # Deep queue: a burst from thousands of devices must not make paho refuse our own publishes.
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_socket_open = _no_delay
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as exc:
            self._client = None
            raise UsageError(f"collector: cannot connect to mqtts://{cfg.host}:{cfg.port}: {exc}") from exc
        client.loop_start()
        if not self._subscribed.wait(timeout) or self._connect_error is not None:
            reason = self._connect_error or f"no SUBACK within {timeout} s"
            self.stop()
            raise UsageError(f"collector: subscription to {cfg.realm}/# failed: {reason}")

    def stop(self) -> None:
        """Disconnect and join the network thread. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_listener(self, listener: Listener) -> None:
        """Called for every recorded message (not for dropped ones), on the network thread."""
        with self._cond:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish with the admin identity (the campaign driver's OTARequests). Thread-safe (paho locks)."""
        client = self._client
        if client is None:
            raise UsageError("collector: publish while not started")
        info = client.publish(topic, payload, qos=qos, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise UsageError(f"collector: publish to {topic} failed: {mqtt.error_string(info.rc)}")

    # -- paho callbacks (network thread) -------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason_code: Any,
                    _properties: object) -> None:
        if reason_code.is_failure:
            self._connect_error = f"CONNACK {reason_code}"
            self._subscribed.set()
            return
        # Clean session: (re)subscribe on every connect, QoS 2 so delivered QoS = the publisher's QoS.
        client.subscribe(f"{self.config.realm}/#", qos=2)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int, reason_codes: list[Any],
                      _properties: object) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._connect_error = f"SUBACK {[str(rc) for rc in reason_codes]}"
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        # paho runs on_message for a QoS 2 PUBLISH when the broker's PUBREL comes back (client.py
        # `_handle_pubrel`), one round trip after the PUBLISH: hence TCP_NODELAY on this socket (_no_delay).
        arrival = self._clock.wall()  # first, before any work: latency is measured to this instant
        self.handle_message(msg.topic, msg.qos, bytes(msg.payload), bool(msg.retain), arrival)

    # -- the work ------------------------------------------------------------------------------------------

    def set_drop_rules(self, rules: list[dict[str, object]]) -> None:
        """Drop on purpose every OTAEvent matching one of `rules` ({"device_id", "status", "request_uuid"}, each
        optional; an empty rule matches everything). For loss-accounting tests through the control endpoint
        (POST /drop): the generator's books must then report exactly these events lost, acked_not_arrived."""
        fields = (("device_id", 0), ("request_uuid", 1), ("status", 2))
        compiled = [[(idx, str(rule[name])) for name, idx in fields if rule.get(name) is not None]
                    for rule in rules]

        def drop(key: EventKey) -> bool:
            return any(all(key[idx] == want for idx, want in rule) for rule in compiled)

        with self._cond:
            self._drop = drop if compiled else None

    def handle_message(
        self, topic: str, qos: int, payload: bytes, retain: bool = False, arrival: float | None = None
    ) -> Classified | None:
        """Validate and record one message; returns None when `drop` discarded it. Public so that the core
        can be exercised without a broker."""
        if arrival is None:
            arrival = self._clock.wall()
        started = time.perf_counter()  # handler cost only: a measurement, not logic
        msg = self._validator.classify(topic, qos, payload, retain)
        with self._cond:
            if msg.interface == OTA_EVENT_INTERFACE and msg.kind != KIND_UNSET:
                fields = _ota_key_fields(msg.value)
                if fields is not None:
                    key: EventKey = self._occurrences.key(msg.device_id, *fields)
                    if self._drop is not None and self._drop(key):
                        self._dropped += 1
                        return None
                    code = msg.value.get("statusCode", "") if isinstance(msg.value, dict) else ""
                    self._arrivals.append(ArrivalRecord(key, arrival, msg.t_ms, qos,
                                                        code if isinstance(code, str) else ""))
            self._record(msg, topic, arrival)
            listeners = tuple(self._listeners)
            self._handler_s += time.perf_counter() - started
            self._handled += 1
            self._cond.notify_all()
        for listener in listeners:
            listener(msg, arrival)
        return msg

    def _record(self, msg: Classified, topic: str, arrival: float) -> None:
        self._handshake.observe(msg)
        self._messages[msg.kind] += 1
        self._qos[(msg.interface or msg.kind, msg.qos)] += 1
        if msg.device_id:
            self._devices.add(msg.device_id)
        if msg.note is not None:
            self._notes[msg.note] += 1
        if msg.violation is not None:
            self._violations[msg.violation] += 1
            self._examples.append({"violation": msg.violation, "reason": msg.reason, "topic": topic,
                                   "device_id": msg.device_id, "qos": msg.qos, "arrival": arrival})
            return  # an invalid property value is not stored (Astarte would reject it)
        if msg.interface is not None and msg.path is not None:
            if msg.kind == KIND_PROPERTY:
                paths = self._properties.setdefault(msg.device_id, {}).setdefault(msg.interface, {})
                paths[msg.path] = msg.value
            elif msg.kind == KIND_UNSET:
                self._properties.get(msg.device_id, {}).get(msg.interface, {}).pop(msg.path, None)

    # -- thread-safe reads ---------------------------------------------------------------------------------

    def arrivals(self, since: int = 0, limit: int | None = None) -> list[ArrivalRecord]:
        """OTAEvent arrivals from index `since`, at most `limit` (the log is append-only, so `since` pages
        through it)."""
        with self._cond:
            return self._arrivals.read(since, limit)

    def arrival_count(self) -> int:
        with self._cond:
            return self._arrivals.count

    def mark(self, label: str = "") -> RunMark:
        """Note where a run begins: the arrival count and the wall clock now, under the lock, so that every
        arrival recorded after it has an index >= `cursor`. A long-lived backend serves run after run (and the
        same seed gives the same event keys): the generator joins only the rows from its run's mark.

        Occurrences are numbered from 0 again after a mark, as the run's devices number theirs: counted over
        the backend's life, the second run of a seed would see every key one occurrence too high. (Two runs
        against one backend at the same time are not fenced from each other: each mark renumbers both.)"""
        with self._cond:
            mark = RunMark(cursor=self._arrivals.count, at=self._clock.wall(), label=label[:200])
            self._occurrences = RecentKeyBook()
            self._marks.append(mark)
            return mark

    def violations(self) -> dict[str, int]:
        with self._cond:
            return dict(self._violations)

    def violation_examples(self) -> list[dict[str, object]]:
        with self._cond:
            return [dict(e) for e in self._examples]

    def properties(self, device_id: str) -> dict[str, dict[str, object]]:
        """Last value of every device-owned property of one device: {interface: {path: value}}."""
        with self._cond:
            return {iface: dict(paths) for iface, paths in self._properties.get(device_id, {}).items()}

    def devices_seen(self) -> set[str]:
        with self._cond:
            return set(self._devices)

    def handshake(self, device_id: str) -> dict[str, object] | None:
        with self._cond:
            state = self._handshake.devices.get(device_id)
            if state is None:
                return None
            return {"introspection": dict(state.introspection or {}), "empty_cache": state.empty_cache,
                    "producer_properties": state.producer_properties, "introspections": state.introspections}

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics and summaries."""
        with self._cond:
            return {
                "messages": dict(self._messages),
                "qos_delivered": {f"{name}|{qos}": n for (name, qos), n in self._qos.items()},
                "violations": dict(self._violations),
                "divergences": dict(self._notes),
                "arrivals": self._arrivals.count,
                "dropped": self._dropped,
                "devices_seen": len(self._devices),
                "handled": self._handled,
                "handler_us_mean": (self._handler_s / self._handled * 1e6) if self._handled else 0.0,
                "marks": [{"cursor": m.cursor, "at": m.at, "label": m.label} for m in self._marks],
            }

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` is true (re-checked after every message) or `timeout` seconds pass.
        The predicate runs under the collector's (re-entrant) lock, so it may call the read methods."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)


def _no_delay(_client: mqtt.Client, _userdata: object, sock: Any) -> None:
    """TCP_NODELAY on the collector's connection (every (re)connect). Without it Nagle held the collector's
    PUBREC whenever an earlier segment of ours was unacknowledged, and the broker acknowledges a lone PUBCOMP
    only with its delayed ACK (~40 ms on Linux): two devices publishing within a few ms of each other then
    saw one of them arrive 20-45 ms late at the collector (e2e p90 37 ms at 16 events/s, quickstart, while
    publish->PUBCOMP stayed at 1 ms), which is the observer's delay, not the backend's."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
