"""Classify one MQTT message seen by the collector and say what, if anything, is wrong with it (pure, no I/O).

The rules are Astarte MQTT v1's (docs/protocol.md section 1, from astarte doc/pages/architecture/
080-mqtt-v1-protocol.md and apps/astarte_data_updater_plant): topic `<realm>/<device_id>[/...]`, introspection
on the bare prefix, control messages under `/control/`, data on `/<interface><path>` with QoS = reliability,
BSON `{"v": value, "t": datetime}`. Leaf and type checks reuse astarte-device-sdk 0.14.0's own `Mapping`
(astarte/device/mapping.py), so "valid" here means what the SDK would have let a device send.

One message gets at most one violation (the first found, in the order the backend would meet them), plus a
human reason. `HandshakeTracker` adds the per-device ordering checks (introspection before anything else).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import bson
from astarte.device.exceptions import ValidationError
from astarte.device.interface import Interface
from astarte.device.mapping import Mapping as SdkMapping

__all__ = [
    "BAD_BSON", "BAD_CONTROL", "BAD_DEVICE_ID", "BAD_INTROSPECTION", "BAD_PATH", "BAD_T", "BAD_TOPIC",
    "EMPTY_PAYLOAD", "HANDSHAKE_ORDER", "KIND_CONSUMER_PROPERTIES", "KIND_DATASTREAM", "KIND_EMPTY_CACHE",
    "KIND_INTROSPECTION", "KIND_INVALID", "KIND_PRODUCER_PROPERTIES", "KIND_PROPERTY", "KIND_SERVER_DATA",
    "KIND_UNSET", "MISSING_LEAF", "MISSING_T", "MISSING_VALUE", "NOTE_PRODUCER_PROPERTIES_LE",
    "NOT_IN_INTROSPECTION", "OUT_OF_RANGE", "RETAINED", "UNEXPECTED_T", "UNKNOWN_INTERFACE", "UNKNOWN_LEAF",
    "VIOLATION_KINDS", "WRONG_QOS", "WRONG_TYPE", "Classified", "HandshakeState", "HandshakeTracker",
    "Validator",
]

# Message kinds (what the message is, whether valid or not).
KIND_INTROSPECTION = "introspection"
KIND_EMPTY_CACHE = "empty_cache"
KIND_PRODUCER_PROPERTIES = "producer_properties"
KIND_CONSUMER_PROPERTIES = "consumer_properties"  # server -> device; seen because we subscribe to `<realm>/#`
KIND_DATASTREAM = "datastream"
KIND_PROPERTY = "property"
KIND_UNSET = "property_unset"
KIND_SERVER_DATA = "server_data"  # a server-owned interface (OTARequest published by the campaign driver)
KIND_INVALID = "invalid"  # topic cannot be attributed to a device

# Violation kinds (each counted separately by the collector).
BAD_TOPIC = "bad_topic"
BAD_DEVICE_ID = "bad_device_id"
RETAINED = "retained"
WRONG_QOS = "wrong_qos"
BAD_INTROSPECTION = "bad_introspection"
BAD_CONTROL = "bad_control"
UNKNOWN_INTERFACE = "unknown_interface"
BAD_PATH = "bad_path"
EMPTY_PAYLOAD = "empty_payload"
BAD_BSON = "bad_bson"
MISSING_VALUE = "missing_value"
MISSING_T = "missing_t"
UNEXPECTED_T = "unexpected_t"
BAD_T = "bad_t"
MISSING_LEAF = "missing_leaf"
UNKNOWN_LEAF = "unknown_leaf"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
HANDSHAKE_ORDER = "handshake_order"
NOT_IN_INTROSPECTION = "not_in_introspection"
VIOLATION_KINDS = (
    BAD_TOPIC, BAD_DEVICE_ID, RETAINED, WRONG_QOS, BAD_INTROSPECTION, BAD_CONTROL, UNKNOWN_INTERFACE,
    BAD_PATH, EMPTY_PAYLOAD, BAD_BSON, MISSING_VALUE, MISSING_T, UNEXPECTED_T, BAD_T, MISSING_LEAF,
    UNKNOWN_LEAF, WRONG_TYPE, OUT_OF_RANGE, HANDSHAKE_ORDER, NOT_IN_INTROSPECTION,
)

# Not a violation: the Python SDK writes the producer/properties length little-endian where the spec says
# big-endian (astarte-device-sdk-python device_mqtt.py; docs/protocol.md section 1). Counted as a divergence.
NOTE_PRODUCER_PROPERTIES_LE = "producer_properties_little_endian"

# 128-bit device id, unpadded base64url = 22 characters (docs/protocol.md section 1).
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{22}")
# Interface names as the SDK accepts them (astarte/device/interface.py name_regex).
_IFACE_NAME = re.compile(r"([a-zA-Z][a-zA-Z0-9]*\.([a-zA-Z0-9][a-zA-Z0-9-]*\.)*)?[a-zA-Z][a-zA-Z0-9]*")
_VERSION = re.compile(r"[0-9]+")
# A parametric segment %{name} matches one path segment (SDK Mapping.validate_path).
_PARAM = re.compile(r"%\{[a-zA-Z_]+[a-zA-Z0-9_]*\}")
_PARAM_MATCH = "[a-zA-Z_]+[a-zA-Z0-9_]*"


@dataclass(slots=True)
class Classified:
    """One message, classified. `value` is the decoded payload (`v`) when decodable, even if a violation was
    found later (so an OTAEvent with, e.g., the wrong QoS still yields an arrival)."""

    kind: str
    device_id: str
    interface: str | None = None
    path: str | None = None
    value: Any = None
    t_ms: int | None = None
    violation: str | None = None
    reason: str = ""
    qos: int = 0
    note: str | None = None  # a tolerated divergence (NOTE_PRODUCER_PROPERTIES_LE)

    def flag(self, violation: str, reason: str) -> Classified:
        """Record `violation` unless an earlier one was already found."""
        if self.violation is None:
            self.violation = violation
            self.reason = reason
        return self


@dataclass(slots=True)
class _Rule:
    """One interface, precompiled: the SDK's `Interface.get_mapping` compiles a regex per call, too slow for
    thousands of messages per second."""

    iface: Interface
    properties: bool
    server_owned: bool
    obj: bool
    exact: dict[str, SdkMapping] = field(default_factory=dict)  # individual: endpoint -> mapping
    patterns: list[tuple[re.Pattern[str], SdkMapping]] = field(default_factory=list)
    obj_prefix: str | None = None  # object: the common path, e.g. "/event"
    obj_pattern: re.Pattern[str] | None = None  # object with a parametric prefix
    leaves: dict[str, SdkMapping] = field(default_factory=dict)  # object: leaf name -> mapping

    @classmethod
    def build(cls, iface: Interface) -> _Rule:
        rule = cls(iface, iface.is_type_properties(), iface.is_server_owned(), iface.is_aggregation_object())
        for m in iface.mappings:
            if rule.obj:
                prefix, _, leaf = m.endpoint.rpartition("/")
                rule.leaves[leaf] = m
                # Endpoint segments are [a-zA-Z0-9_] or %{name} only (SDK endpoint_regex): no escaping needed.
                if _PARAM.search(prefix):
                    rule.obj_pattern = re.compile(_PARAM.sub(_PARAM_MATCH, prefix))
                else:
                    rule.obj_prefix = prefix
            elif _PARAM.search(m.endpoint):
                rule.patterns.append((re.compile(_PARAM.sub(_PARAM_MATCH, m.endpoint)), m))
            else:
                rule.exact[m.endpoint] = m
        return rule

    def mapping_for(self, path: str) -> SdkMapping | None:
        """Individual interfaces: the mapping `path` resolves to."""
        m = self.exact.get(path)
        if m is not None:
            return m
        for pattern, mapping in self.patterns:
            if pattern.fullmatch(path):
                return mapping
        return None

    def is_object_path(self, path: str) -> bool:
        if self.obj_pattern is not None:
            return self.obj_pattern.fullmatch(path) is not None
        return path == self.obj_prefix

    def expected_qos(self, mapping: SdkMapping | None) -> int:
        """Properties 2; datastream: reliability; object: first mapping's (SDK Interface.get_reliability)"""
        if self.properties:
            return 2
        if self.obj or mapping is None:
            return int(self.iface.mappings[0].reliability)
        return int(mapping.reliability)


def _check_leaf(m: SdkMapping, value: object) -> tuple[str, str] | None:
    try:
        m.validate_payload(value)
    except ValidationError as exc:
        text = str(exc)
        kind = OUT_OF_RANGE if ("range" in text or "Invalid float" in text) else WRONG_TYPE
        return kind, text
    return None


class Validator:
    """Classifies messages of one realm against a set of interfaces. Stateless after construction."""

    def __init__(
        self, realm: str, interfaces: Mapping[str, Interface], strict_device_id: bool = True
    ) -> None:
        self.realm = realm
        self._prefix = realm + "/"
        self._strict_id = strict_device_id
        self._rules = {name: _Rule.build(i) for name, i in interfaces.items()}

    def interface_major(self, name: str) -> int | None:
        rule = self._rules.get(name)
        return None if rule is None else int(rule.iface.version_major)

    def classify(self, topic: str, qos: int, payload: bytes, retain: bool = False) -> Classified:
        if not topic.startswith(self._prefix):
            return Classified(KIND_INVALID, "", qos=qos).flag(BAD_TOPIC, f"topic {topic!r} not under realm "
                                                                        f"{self.realm!r}")
        rest = topic[len(self._prefix):]
        device_id, sep, sub = rest.partition("/")
        if not device_id:
            return Classified(KIND_INVALID, "", qos=qos).flag(BAD_TOPIC, f"topic {topic!r} has no device id")
        if not sep:
            msg = self._introspection(device_id, qos, payload)
        elif sub.startswith("control/"):
            msg = self._control(device_id, sub[8:], qos, payload)
        else:
            msg = self._data(device_id, sub, qos, payload)
        # Live messages reach a subscriber with retain=0 (MQTT 3.1.1 section 3.3.1.3): retain=1 here is a
        # stale retained message, which Astarte devices never publish (the SDK publishes retain=False).
        if retain:
            msg.flag(RETAINED, "retained message (devices must publish with retain=0)")
        if self._strict_id and _DEVICE_ID.fullmatch(device_id) is None:
            msg.flag(BAD_DEVICE_ID, f"device id {device_id!r} is not 22 characters of base64url (128 bits)")
        return msg

    # -- introspection and control -------------------------------------------------------------------------

    @staticmethod
    def _introspection(device_id: str, qos: int, payload: bytes) -> Classified:
        msg = Classified(KIND_INTROSPECTION, device_id, qos=qos)
        if qos != 2:
            msg.flag(WRONG_QOS, f"introspection published with QoS {qos}, expected 2")
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            return msg.flag(BAD_INTROSPECTION, "introspection is not ASCII")
        declared: dict[str, tuple[int, int]] = {}
        for entry in text.split(";") if text else []:
            parts = entry.split(":")
            if (len(parts) != 3 or _IFACE_NAME.fullmatch(parts[0]) is None
                    or _VERSION.fullmatch(parts[1]) is None or _VERSION.fullmatch(parts[2]) is None):
                return msg.flag(BAD_INTROSPECTION, f"entry {entry!r} is not name:major:minor")
            declared[parts[0]] = (int(parts[1]), int(parts[2]))
        msg.value = declared
        return msg

    def _control(self, device_id: str, what: str, qos: int, payload: bytes) -> Classified:
        if what == "emptyCache":
            msg = Classified(KIND_EMPTY_CACHE, device_id, qos=qos)
            if qos != 2:
                msg.flag(WRONG_QOS, f"emptyCache published with QoS {qos}, expected 2")
            if payload != b"1":
                msg.flag(BAD_CONTROL, f"emptyCache payload {payload[:16]!r}, expected b'1'")
            return msg
        if what == "consumer/properties":
            return Classified(KIND_CONSUMER_PROPERTIES, device_id, qos=qos)
        if what != "producer/properties":
            invalid = Classified(KIND_INVALID, device_id, qos=qos)
            return invalid.flag(BAD_CONTROL, f"unknown control topic {what!r}")
        msg = Classified(KIND_PRODUCER_PROPERTIES, device_id, qos=qos)
        if qos != 2:
            msg.flag(WRONG_QOS, f"producer/properties published with QoS {qos}, expected 2")
        if len(payload) < 4:
            return msg.flag(BAD_CONTROL, "producer/properties shorter than its 4-byte length prefix")
        try:
            body = zlib.decompress(payload[4:]).decode("utf-8")
        except (zlib.error, UnicodeDecodeError) as exc:
            return msg.flag(BAD_CONTROL, f"producer/properties body is not zlib'd UTF-8: {exc}")
        length = len(body)
        if int.from_bytes(payload[:4], "big") != length:
            if int.from_bytes(payload[:4], "little") == length:
                msg.note = NOTE_PRODUCER_PROPERTIES_LE
            else:
                msg.flag(BAD_CONTROL, f"length prefix {payload[:4].hex()} is neither byte order of {length}")
        entries = body.split(";") if body else []
        msg.value = entries
        for entry in entries:
            name, slash, path = entry.partition("/")
            rule = self._rules.get(name)
            if rule is None or not slash or not rule.properties or rule.mapping_for("/" + path) is None:
                return msg.flag(BAD_CONTROL, f"producer/properties lists {entry!r}: not a known property")
        return msg

    # -- data ------------------------------------------------------------------------------------------------

    def _data(self, device_id: str, sub: str, qos: int, payload: bytes) -> Classified:
        name, slash, tail = sub.partition("/")
        path = "/" + tail
        rule = self._rules.get(name)
        if rule is None:
            return Classified(KIND_DATASTREAM, device_id, name, path, qos=qos).flag(
                UNKNOWN_INTERFACE, f"interface {name!r} is not known to the backend")
        kind = (KIND_SERVER_DATA if rule.server_owned
                else KIND_PROPERTY if rule.properties else KIND_DATASTREAM)
        msg = Classified(kind, device_id, name, path, qos=qos)
        mapping: SdkMapping | None = None
        if not slash or not tail:
            return msg.flag(BAD_PATH, f"no path after interface {name!r}")
        if rule.obj:
            if not rule.is_object_path(path):
                return msg.flag(BAD_PATH, f"{path!r} is not the object path of {name}")
        else:
            mapping = rule.mapping_for(path)
            if mapping is None:
                return msg.flag(BAD_PATH, f"{path!r} matches no mapping of {name}")
        expected = rule.expected_qos(mapping)
        if qos != expected:
            msg.flag(WRONG_QOS, f"{name}{path} published with QoS {qos}, reliability says {expected}")
        if not payload:
            if rule.properties and not rule.server_owned:
                msg.kind = KIND_UNSET
                if mapping is not None and not mapping.allow_unset:
                    msg.flag(EMPTY_PAYLOAD, f"unset of {name}{path}, which has allow_unset false")
                return msg
            return msg.flag(EMPTY_PAYLOAD, f"empty payload on datastream {name}{path}")
        try:
            doc = bson.loads(payload)
        except Exception as exc:  # py-bson raises IndexError/ValueError/struct.error on malformed input
            return msg.flag(BAD_BSON, f"payload is not a BSON document ({type(exc).__name__}: {exc})")
        if not isinstance(doc, dict) or "v" not in doc:
            return msg.flag(MISSING_VALUE, "BSON document has no 'v' field")
        value = doc["v"]
        msg.value = value
        t = doc.get("t")
        explicit = rule.iface.mappings[0].explicit_timestamp if rule.obj else bool(
            mapping is not None and mapping.explicit_timestamp)
        if t is not None:
            if isinstance(t, datetime):
                msg.t_ms = round(t.timestamp() * 1000)
                if not explicit:
                    msg.flag(UNEXPECTED_T, f"'t' sent on {name}{path}, which has no explicit_timestamp")
            else:
                msg.flag(BAD_T, f"'t' is {type(t).__name__}, expected a BSON UTC datetime")
        elif explicit:
            msg.flag(MISSING_T, f"'t' missing on {name}{path}, which has explicit_timestamp")
        if mapping is not None:
            problem = _check_leaf(mapping, value)
            if problem is not None:
                msg.flag(*problem)
            return msg
        if not isinstance(value, dict):
            return msg.flag(WRONG_TYPE, f"{name}{path} is an object but 'v' is {type(value).__name__}")
        for leaf, leaf_value in value.items():
            leaf_mapping = rule.leaves.get(leaf)
            if leaf_mapping is None:
                return msg.flag(UNKNOWN_LEAF, f"leaf {leaf!r} is not in {name}")
            problem = _check_leaf(leaf_mapping, leaf_value)
            if problem is not None:
                return msg.flag(*problem)
        # Device-owned objects must carry every leaf; server-owned may be partial (SDK
        # Interface.validate_payload).
        if not rule.server_owned and len(value) != len(rule.leaves):
            missing = sorted(set(rule.leaves) - set(value))
            msg.flag(MISSING_LEAF, f"{name}{path} lacks leaf {', '.join(missing)}")
        return msg


@dataclass(slots=True)
class HandshakeState:
    """What one device has done since the collector started (docs/protocol.md section 1, connect handshake)."""

    introspection: dict[str, tuple[int, int]] | None = None
    empty_cache: bool = False
    producer_properties: bool = False
    introspections: int = 0  # a new one = a new session (Astarte resyncs by dropping the session)


class HandshakeTracker:
    """Per-device ordering checks: introspection first; data only on interfaces the introspection declares,
    with the same major version. A device that reconnects with a session present sends nothing, so only the
    first introspection is required, not one per connection. Not thread-safe (the collector holds a lock)."""

    def __init__(self, validator: Validator) -> None:
        self._validator = validator
        self.devices: dict[str, HandshakeState] = {}

    def observe(self, msg: Classified) -> Classified:
        if not msg.device_id or msg.kind in (KIND_INVALID, KIND_SERVER_DATA, KIND_CONSUMER_PROPERTIES):
            return msg
        state = self.devices.get(msg.device_id)
        if state is None:
            state = self.devices[msg.device_id] = HandshakeState()
        kind = msg.kind
        if kind == KIND_INTROSPECTION:
            if isinstance(msg.value, dict):
                state.introspection = msg.value
            state.introspections += 1
            state.empty_cache = state.producer_properties = False
            return msg
        if state.introspection is None:
            if msg.qos == 0:
                # MQTT orders messages only within one QoS: a broker may deliver a QoS 0 message ahead of
                # QoS 2 ones still queued for a slow subscriber (seen with mosquitto), so a QoS 0 message
                # seen first proves nothing about the device's order.
                return msg
            return msg.flag(HANDSHAKE_ORDER, f"{kind} before any introspection from this device")
        if kind == KIND_EMPTY_CACHE:
            state.empty_cache = True
        elif kind == KIND_PRODUCER_PROPERTIES:
            state.producer_properties = True
        elif msg.interface is not None:
            declared = state.introspection.get(msg.interface)
            if declared is None:
                return msg.flag(NOT_IN_INTROSPECTION, f"{msg.interface} is not in the device's introspection")
            major = self._validator.interface_major(msg.interface)
            if major is not None and declared[0] != major:
                return msg.flag(NOT_IN_INTROSPECTION, f"introspection declares {msg.interface} major "
                                                      f"{declared[0]}, the backend has {major}")
        return msg
