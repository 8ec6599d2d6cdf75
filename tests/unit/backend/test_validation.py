"""Validation of Astarte MQTT v1 messages: one test per violation kind, each checking the reason too.

Payloads are encoded exactly as astarte-device-sdk 0.14.0 does (device_mqtt.py `_send_generic`):
`bson.dumps({"v": payload, "t": timestamp})`, `t` only when given; introspection, emptyCache and
producer/properties as in `__send_introspection`, `__send_empty_cache`, `__send_device_owned_properties`.
"""

from __future__ import annotations

import datetime as dt
import zlib

import bson
import pytest

from simulator.backend import validation as v
from simulator.interfaces.loader import load_interfaces

REALM = "test"
DEV = "AAECAwQFBgcICQoLDA0ODw"  # 16 bytes, base64url, 22 chars
OTA = "io.edgehog.devicemanager.OTAEvent"
T = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
T_MS = 1714564800123


def sdk_payload(value: object, timestamp: dt.datetime | None = None) -> bytes:
    doc: dict[str, object] = {"v": value}
    if timestamp:
        doc["t"] = timestamp
    data: bytes = bson.dumps(doc)
    return data


def ota_value(**overrides: object) -> dict[str, object]:
    value: dict[str, object] = {"requestUUID": "7f6c3a0e-0000-4000-8000-000000000001",
                                "status": "Downloading", "statusProgress": 40, "statusCode": "",
                                "message": ""}
    value.update(overrides)
    return value


@pytest.fixture(scope="module")
def validator() -> v.Validator:
    return v.Validator(REALM, load_interfaces())


def topic(sub: str = "") -> str:
    return f"{REALM}/{DEV}{sub}"


def test_valid_ota_event_decodes_value_and_t(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(), T))
    assert msg.violation is None, msg.reason
    assert (msg.kind, msg.device_id, msg.interface, msg.path) == (v.KIND_DATASTREAM, DEV, OTA, "/event")
    assert msg.value == ota_value()
    assert msg.t_ms == T_MS


def test_missing_leaf(validator: v.Validator) -> None:
    value = ota_value()
    del value["statusCode"]
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(value, T))
    assert msg.violation == v.MISSING_LEAF
    assert "statusCode" in msg.reason


def test_wrong_type(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(statusProgress="40"), T))
    assert msg.violation == v.WRONG_TYPE
    assert "/event/statusProgress" in msg.reason and "integer" in msg.reason


def test_integer_outside_int32_is_out_of_range(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(statusProgress=2**31), T))
    assert msg.violation == v.OUT_OF_RANGE
    assert "int32" in msg.reason


def test_wrong_qos_keeps_the_value(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 1, sdk_payload(ota_value(), T))
    assert msg.violation == v.WRONG_QOS
    assert "QoS 1" in msg.reason and "says 2" in msg.reason
    assert msg.value == ota_value()  # still decodable: the collector records the arrival


def test_missing_t(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value()))
    assert msg.violation == v.MISSING_T
    assert "explicit_timestamp" in msg.reason
    assert msg.t_ms is None


def test_unknown_leaf(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(extra="x"), T))
    assert msg.violation == v.UNKNOWN_LEAF and "'extra'" in msg.reason


def test_unknown_interface(validator: v.Validator) -> None:
    msg = validator.classify(topic("/com.example.Nope/value"), 2, sdk_payload(1, T))
    assert msg.violation == v.UNKNOWN_INTERFACE and "com.example.Nope" in msg.reason


def test_bad_path_for_object_and_individual(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/other"), 2, sdk_payload(ota_value(), T))
    assert msg.violation == v.BAD_PATH and "'/other'" in msg.reason
    msg = validator.classify(topic("/io.edgehog.devicemanager.BaseImage/nope"), 2, sdk_payload("x"))
    assert msg.violation == v.BAD_PATH and "matches no mapping" in msg.reason
    msg = validator.classify(topic(f"/{OTA}"), 2, sdk_payload(ota_value(), T))
    assert msg.violation == v.BAD_PATH


def test_bad_bson_and_missing_value(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, b"\x05\x00\x00\x00garbage")
    assert msg.violation == v.BAD_BSON and "not a BSON document" in msg.reason
    msg = validator.classify(topic(f"/{OTA}/event"), 2, bson.dumps({"x": 1}))
    assert msg.violation == v.MISSING_VALUE


def test_t_on_a_property_is_unexpected_and_bad_t_type(validator: v.Validator) -> None:
    msg = validator.classify(topic("/io.edgehog.devicemanager.BaseImage/version"), 2, sdk_payload("1.0", T))
    assert msg.violation == v.UNEXPECTED_T
    msg = validator.classify(topic(f"/{OTA}/event"), 2, bson.dumps({"v": ota_value(), "t": 1714564800123}))
    assert msg.violation == v.BAD_T and "int" in msg.reason


def test_property_set_unset_and_empty_datastream(validator: v.Validator) -> None:
    msg = validator.classify(topic("/io.edgehog.devicemanager.BaseImage/version"), 2, sdk_payload("2.0.0"))
    assert (msg.kind, msg.value, msg.violation) == (v.KIND_PROPERTY, "2.0.0", None)
    msg = validator.classify(topic("/io.edgehog.devicemanager.BaseImage/version"), 2, b"")
    assert msg.kind == v.KIND_UNSET
    assert msg.violation == v.EMPTY_PAYLOAD and "allow_unset false" in msg.reason
    msg = validator.classify(topic(f"/{OTA}/event"), 2, b"")
    assert msg.violation == v.EMPTY_PAYLOAD and "datastream" in msg.reason


def test_property_qos_must_be_2(validator: v.Validator) -> None:
    msg = validator.classify(topic("/io.edgehog.devicemanager.OSInfo/osName"), 0, sdk_payload("Linux"))
    assert msg.violation == v.WRONG_QOS and "QoS 0" in msg.reason


def test_parametric_object_path_and_longinteger(validator: v.Validator) -> None:
    iface = "io.edgehog.devicemanager.StorageUsage"
    big = sdk_payload({"totalBytes": 2**40, "freeBytes": 5}, T)
    msg = validator.classify(topic(f"/{iface}/sda1"), 0, big)
    assert msg.violation is None, msg.reason
    msg = validator.classify(topic(f"/{iface}/sda1/x"), 0, sdk_payload({"totalBytes": 1, "freeBytes": 5}, T))
    assert msg.violation == v.BAD_PATH


def test_server_owned_request_may_be_partial_and_is_qos_0(validator: v.Validator) -> None:
    req = "io.edgehog.devicemanager.OTARequest"
    msg = validator.classify(topic(f"/{req}/request"), 0, sdk_payload({"operation": "Cancel", "uuid": "u"}))
    assert (msg.kind, msg.violation) == (v.KIND_SERVER_DATA, None)
    msg = validator.classify(topic(f"/{req}/request"), 2, sdk_payload({"operation": "Cancel", "uuid": "u"}))
    assert msg.violation == v.WRONG_QOS


def test_bad_topic_and_bad_device_id(validator: v.Validator) -> None:
    msg = validator.classify(f"other/{DEV}", 2, b"x:1:0")
    assert msg.violation == v.BAD_TOPIC and "'test'" in msg.reason
    msg = validator.classify(f"{REALM}/", 2, b"")
    assert msg.violation == v.BAD_TOPIC
    msg = validator.classify(f"{REALM}/short", 2, b"io.x.Y:1:0")
    assert msg.violation == v.BAD_DEVICE_ID and "'short'" in msg.reason
    lenient = v.Validator(REALM, load_interfaces(), strict_device_id=False)
    assert lenient.classify(f"{REALM}/short", 2, b"io.x.Y:1:0").violation is None


def test_retained_message_is_flagged(validator: v.Validator) -> None:
    msg = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(), T), retain=True)
    assert msg.violation == v.RETAINED


def test_introspection_valid_and_bad(validator: v.Validator) -> None:
    text = f"{OTA}:0:1;io.edgehog.devicemanager.OTARequest:1:0"
    msg = validator.classify(topic(), 2, text.encode("ascii"))
    assert msg.violation is None
    assert msg.value == {OTA: (0, 1), "io.edgehog.devicemanager.OTARequest": (1, 0)}
    for bad in (f"{OTA}:0", f"{OTA}:a:1", f"{OTA}:0:1;", "9bad:1:0"):
        msg = validator.classify(topic(), 2, bad.encode())
        assert msg.violation == v.BAD_INTROSPECTION, bad
        assert "name:major:minor" in msg.reason
    assert validator.classify(topic(), 2, "é:1:0".encode()).violation == v.BAD_INTROSPECTION
    assert validator.classify(topic(), 1, text.encode()).violation == v.WRONG_QOS


def test_empty_cache(validator: v.Validator) -> None:
    assert validator.classify(topic("/control/emptyCache"), 2, b"1").violation is None
    msg = validator.classify(topic("/control/emptyCache"), 2, b"0")
    assert msg.violation == v.BAD_CONTROL and "b'1'" in msg.reason
    assert validator.classify(topic("/control/unknown"), 2, b"").violation == v.BAD_CONTROL


def test_producer_properties_both_byte_orders(validator: v.Validator) -> None:
    body = "io.edgehog.devicemanager.BaseImage/version;io.edgehog.devicemanager.OSInfo/osName"
    big = len(body).to_bytes(4, "big") + zlib.compress(body.encode())
    msg = validator.classify(topic("/control/producer/properties"), 2, big)
    assert (msg.violation, msg.note) == (None, None)
    assert msg.value == body.split(";")
    little = len(body).to_bytes(4, "little") + zlib.compress(body.encode())  # what the Python SDK writes
    msg = validator.classify(topic("/control/producer/properties"), 2, little)
    assert (msg.violation, msg.note) == (None, v.NOTE_PRODUCER_PROPERTIES_LE)
    wrong = (len(body) + 1).to_bytes(4, "big") + zlib.compress(body.encode())
    assert validator.classify(topic("/control/producer/properties"), 2, wrong).violation == v.BAD_CONTROL
    msg = validator.classify(topic("/control/producer/properties"), 2, b"\x00\x00\x00\x05notzlib")
    assert msg.violation == v.BAD_CONTROL and "zlib" in msg.reason
    unknown = "x.Y/z"
    payload = len(unknown).to_bytes(4, "big") + zlib.compress(unknown.encode())
    msg = validator.classify(topic("/control/producer/properties"), 2, payload)
    assert msg.violation == v.BAD_CONTROL and "x.Y/z" in msg.reason


def test_handshake_order(validator: v.Validator) -> None:
    tracker = v.HandshakeTracker(validator)
    data = validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(), T))
    assert tracker.observe(data).violation == v.HANDSHAKE_ORDER
    assert "before any introspection" in data.reason
    empty = tracker.observe(validator.classify(topic("/control/emptyCache"), 2, b"1"))
    assert empty.violation == v.HANDSHAKE_ORDER
    intro = validator.classify(topic(), 2, b"io.edgehog.devicemanager.BaseImage:0:1")
    assert tracker.observe(intro).violation is None
    assert tracker.observe(validator.classify(topic("/control/emptyCache"), 2, b"1")).violation is None
    # OTAEvent is not in this introspection.
    data = tracker.observe(validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(), T)))
    assert data.violation == v.NOT_IN_INTROSPECTION and OTA in data.reason
    # Declared with another major version than the backend's (0).
    tracker.observe(validator.classify(topic(), 2, f"{OTA}:1:0".encode()))
    data = tracker.observe(validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(), T)))
    assert data.violation == v.NOT_IN_INTROSPECTION and "major 1" in data.reason
    tracker.observe(validator.classify(topic(), 2, f"{OTA}:0:1".encode()))
    data = tracker.observe(validator.classify(topic(f"/{OTA}/event"), 2, sdk_payload(ota_value(), T)))
    assert data.violation is None
    assert tracker.devices[DEV].introspections == 3
