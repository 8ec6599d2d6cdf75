"""Astarte's `SimpleEvent` protobuf (what an AMQP trigger action publishes): a small wire-format codec.

No generated module is available (astarte_message_hub_proto defines the message hub's messages, not
astarte_core's trigger events), so this decodes the protobuf wire format directly, for the fields fleetsim
needs. Field numbers from astarte_core lib/astarte_core/triggers/simple_events/ (Apache-2.0):

    message SimpleEvent {                       message IncomingDataEvent {   // ValueStoredEvent: same
      int32 version = 1 [deprecated];             string interface = 1;
      optional bytes simple_trigger_id = 2;       string path = 2;
      optional bytes parent_trigger_id = 3;       bytes bson_value = 3;
      optional string realm = 4;                }
      optional string device_id = 5;
      optional int64 timestamp = 18;
      oneof event { ... IncomingDataEvent incoming_data_event = 8; ...
                    ValueStoredEvent value_stored_event = 13;
                    ... }
    }

`timestamp` is epoch milliseconds: data_updater_plant passes the value's own timestamp for an
explicit_timestamp mapping (the device's `t`, docs/protocol.md section 3) and `div(reception_timestamp, 10000)`
(100 ns units -> ms) otherwise (data_updater_plant core/data_handler.ex `execute_incoming_data_triggers`).
`bson_value` is the BSON document `{"v": value[, "t": datetime]}`. `encode_simple_event` exists for tests and
for feeding an observer by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DecodedEvent", "decode_bson_value", "decode_simple_event", "encode_simple_event"]

# SimpleEvent field numbers.
_REALM, _DEVICE_ID, _TIMESTAMP = 4, 5, 18
_EVENT_FIELDS = {8: "incoming_data_event", 13: "value_stored_event"}
# Other oneof members, named so that an unsupported event type is reported by name.
_OTHER_EVENTS = {
    6: "device_connected_event",
    7: "device_disconnected_event",
    9: "value_change_event",
    10: "value_change_applied_event",
    11: "path_created_event",
    12: "path_removed_event",
    14: "incoming_introspection_event",
    15: "interface_added_event",
    16: "interface_removed_event",
    17: "interface_minor_updated_event",
    19: "device_error_event",
}
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class DecodedEvent:
    """The parts of a SimpleEvent an observer uses."""

    event_type: str  # "incoming_data_event", "value_stored_event", or another oneof member's name
    realm: str
    device_id: str
    timestamp_ms: int | None  # SimpleEvent.timestamp (None when absent or 0)
    interface: str = ""
    path: str = ""
    bson_value: bytes = b""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of every field of one message, in order."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError(f"field {number}: length {size} past the end")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            if pos + width > len(buf):
                raise ValueError(f"field {number}: truncated fixed-width value")
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"field {number}: unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _text(value: int | bytes, name: str) -> str:
    if not isinstance(value, bytes):
        raise ValueError(f"{name}: expected a length-delimited string")
    return value.decode("utf-8")


def decode_simple_event(payload: bytes) -> DecodedEvent:
    """Decode a SimpleEvent; ValueError on a malformed message."""
    realm = device_id = ""
    timestamp: int | None = None
    event_type, inner = "", b""
    for number, _wire, value in _fields(payload):
        if number == _REALM:
            realm = _text(value, "realm")
        elif number == _DEVICE_ID:
            device_id = _text(value, "device_id")
        elif number == _TIMESTAMP and isinstance(value, int):
            timestamp = value - (1 << 64) if value >= 1 << 63 else value  # int64 two's complement
        elif number in _EVENT_FIELDS and isinstance(value, bytes):
            event_type, inner = _EVENT_FIELDS[number], value
        elif number in _OTHER_EVENTS:
            event_type = _OTHER_EVENTS[number]
    event = DecodedEvent(
        event_type=event_type, realm=realm, device_id=device_id, timestamp_ms=timestamp or None
    )
    if event_type not in _EVENT_FIELDS.values():
        return event
    interface = path = ""
    bson_value = b""
    for number, _wire, value in _fields(inner):
        if number == 1:
            interface = _text(value, "interface")
        elif number == 2:
            path = _text(value, "path")
        elif number == 3 and isinstance(value, bytes):
            bson_value = value
    return DecodedEvent(event_type, realm, device_id, timestamp or None, interface, path, bson_value)


def decode_bson_value(raw: bytes) -> tuple[Any, int | None]:
    """(value, `t` in epoch ms or None) of a `{"v": ..., "t": ...}` BSON document; ValueError if not one."""
    import bson

    try:
        doc = bson.loads(raw)
    except Exception as exc:  # py-bson raises assorted errors on garbage
        raise ValueError(f"bson_value is not BSON: {exc}") from None
    if not isinstance(doc, Mapping) or "v" not in doc:
        raise ValueError("bson_value has no 'v'")
    t = doc.get("t")
    t_ms = round(t.timestamp() * 1000) if isinstance(t, dt.datetime) else None
    return doc["v"], t_ms


# -- encoding (tests, hand-fed observers) --------------------------------------------------------------------


def _enc_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _enc_len(number: int, data: bytes) -> bytes:
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(data)) + data


def encode_simple_event(
    *,
    realm: str,
    device_id: str,
    interface: str,
    path: str,
    bson_value: bytes,
    timestamp_ms: int | None,
    event_type: str = "incoming_data_event",
    trigger_id: bytes = b"\x00" * 16,
) -> bytes:
    """A SimpleEvent as data_updater_plant builds it for an incoming_data (or value_stored) trigger."""
    number = {v: k for k, v in _EVENT_FIELDS.items()}[event_type]
    inner = _enc_len(1, interface.encode()) + _enc_len(2, path.encode()) + _enc_len(3, bson_value)
    out = _enc_len(2, trigger_id) + _enc_len(3, trigger_id) + _enc_len(_REALM, realm.encode())
    out += _enc_len(_DEVICE_ID, device_id.encode()) + _enc_len(number, inner)
    if timestamp_ms is not None:
        out += _enc_varint(_TIMESTAMP << 3 | _VARINT) + _enc_varint(timestamp_ms)
    return out
