"""Astarte MQTT v1 on the wire, byte for byte as astarte-device-sdk 0.14.0 writes it (pure: no I/O).

Sources: astarte/device/device_mqtt.py (`_send_generic`, `__setup_subscriptions`, `__send_introspection`,
`__send_empty_cache`, `__send_device_owned_properties`, `__on_message`, `__purge_server_properties`),
device.py (`send`, `send_aggregate`, `unset_property`, `_on_message_generic`), interface.py, mapping.py;
docs/protocol.md section 1. Encoding is done by the SDK's own encoder (py-bson 0.5.10 `bson.dumps`) and
validation by the SDK's own `Interface`/`Mapping` code, so both are the SDK's by construction, quirks included
(e.g. py-bson writes a `bytes` value that happens to be valid UTF-8 as a BSON string, not as binary).
"""

from __future__ import annotations

import calendar
import collections.abc
import copy
import datetime as dt
import functools
import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import bson
from astarte.device.exceptions import ValidationError
from astarte.device.interface import Interface

from simulator.transports.base import PublishError

__all__ = [
    "EMPTY_CACHE_PAYLOAD",
    "PROPERTIES_QOS",
    "ServerMessage",
    "WireError",
    "as_interfaces",
    "base_topic",
    "consumer_properties_topic",
    "data_topic",
    "decode_properties_list",
    "decode_server_message",
    "empty_cache_topic",
    "encode_value",
    "encode_value_at",
    "handshake_subscriptions",
    "introspection_payload",
    "ms_to_datetime",
    "producer_properties_payload",
    "producer_properties_topic",
    "qos_for",
    "validate_property",
    "validate_publish",
    "validate_publish_at",
]

# device_mqtt.py `__send_empty_cache`: payload b"1", QoS 2, retain False.
EMPTY_CACHE_PAYLOAD = b"1"
# Properties (and every control message) go at QoS 2 (interface.py `get_reliability`, mapping.py docstring).
PROPERTIES_QOS = 2
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class WireError(ValueError):
    """An incoming message the SDK would drop (it logs a warning and ignores it); `reason` says why."""


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """Server-owned data as the SDK hands it to on_data_received: value None = property unset."""

    interface: str
    path: str
    value: Any


def as_interfaces(interfaces: Mapping[str, object]) -> dict[str, Interface]:
    """Interfaces as SDK objects, in the given order (the introspection order); JSON dicts are parsed.

    Each is a shallow copy whose `get_mapping(path)` is memoized: the SDK resolves every leaf of every
    publish by trying each mapping's endpoint regex in turn (interface.py `get_mapping`, mapping.py
    `validate_path`): ~90 us of the SDK's validation of one OTAEvent on this machine, ~7 us memoized. The
    result is a pure function of the path (mappings never change after parsing), so the SDK's validation
    code runs unchanged with identical outcomes. The caller's objects are left untouched.
    """
    out: dict[str, Interface] = {}
    for name, item in interfaces.items():
        parsed = item if isinstance(item, Interface) else Interface(dict(item))  # type: ignore[call-overload]
        iface = copy.copy(parsed)
        iface.get_mapping = functools.lru_cache(maxsize=4096)(parsed.get_mapping)
        setattr(iface, _ACCEPTED, {})  # validate_publish's shapes already accepted (ours: a copy)
        out[iface.name if isinstance(iface.name, str) else name] = iface
    return out


# ---- topics (device_mqtt.py `__get_base_topic` and callers) ---------------------------------------


def base_topic(realm: str, device_id: str) -> str:
    """`<realm>/<device_id>`: also the introspection topic."""
    return f"{realm}/{device_id}"


def data_topic(realm: str, device_id: str, interface: str, path: str) -> str:
    """`<realm>/<device_id>/<interface><path>` (path starts with '/')."""
    return f"{realm}/{device_id}/{interface}{path}"


def empty_cache_topic(realm: str, device_id: str) -> str:
    return f"{realm}/{device_id}/control/emptyCache"


def producer_properties_topic(realm: str, device_id: str) -> str:
    return f"{realm}/{device_id}/control/producer/properties"


def consumer_properties_topic(realm: str, device_id: str) -> str:
    return f"{realm}/{device_id}/control/consumer/properties"


def handshake_subscriptions(realm: str, device_id: str, interfaces: Iterable[Interface]) -> list[str]:
    """Topics subscribed at QoS 2, one SUBSCRIBE each, in the SDK's order (`__setup_subscriptions`)."""
    topics = [consumer_properties_topic(realm, device_id)]
    topics += [f"{realm}/{device_id}/{i.name}/#" for i in interfaces if i.is_server_owned()]
    return topics


# ---- payloads -------------------------------------------------------------------------------------


def ms_to_datetime(timestamp_ms: int) -> dt.datetime:
    """Exact UTC datetime for a millisecond timestamp (no float rounding; py-bson keeps the ms)."""
    return _EPOCH + dt.timedelta(milliseconds=timestamp_ms)


def encode_value(value: object, timestamp: dt.datetime | None) -> bytes:
    """BSON `{"v": value[, "t": timestamp]}`; None = unset property = empty payload (`_send_generic`).

    The same bytes as the SDK's `bson.dumps` (py-bson 0.5.10), which costs ~40 us per OTAEvent, the largest
    share of a publish in our code; `_fast_document` writes the common types in ~5 us and hands anything else
    (bytes, lists, naive datetimes, huge ints, str subclasses, bad UTF-8) to `bson.dumps` itself.
    tests/unit/transports/test_wire.py checks byte equality against the SDK and against py-bson.
    """
    if value is None:
        return b""
    doc: dict[str, object] = {"v": value}
    if timestamp:
        doc["t"] = timestamp
    try:
        fast = _fast_document(doc)
    except (UnicodeError, struct.error, OverflowError, ValueError):
        fast = None
    if fast is not None:
        return fast
    out: bytes = bson.dumps(doc)
    return out


_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
# Milliseconds that ms_to_datetime can represent (datetime's years 1..9999); outside them it raises OverflowError.
_MIN_MS = -62_135_596_800_000
_MAX_MS = 253_402_300_800_000
_T_ELEMENT = b"\x09t\x00"  # BSON UTC datetime (0x09) named "t"
_V_DOCUMENT = b"\x03v\x00"  # BSON embedded document (0x03) named "v": what _fast_elements writes for {"v": a dict}


def encode_value_at(value: object, timestamp_ms: int | None) -> bytes:
    """`encode_value(value, ms_to_datetime(timestamp_ms))`, the same bytes, without the datetime: "t" is written
    from the milliseconds themselves, which is what `_utc_ms` gives back for ms_to_datetime's (UTC, whole ms)
    datetime. Every OTAEvent went ms -> datetime -> ms: ~1.6% of the generator's CPU in the rebooting-campaign
    profile (bench/campaign_capacity.py --profile). Anything `_fast_document` hands to py-bson, and
    milliseconds out of datetime's range (OverflowError, as before), take encode_value itself."""
    if timestamp_ms is None:
        return encode_value(value, None)
    if value is None:  # an unset property: no "t" is written, but a timestamp out of range still raises
        return encode_value(None, ms_to_datetime(timestamp_ms))
    try:
        if not _MIN_MS <= timestamp_ms < _MAX_MS:
            body = None
        elif type(value) is dict:  # an object aggregate (every OTAEvent): the one element "v" written directly
            document = _fast_document(value)
            body = None if document is None else _V_DOCUMENT + document
        else:
            body = _fast_elements({"v": value})
    except (UnicodeError, struct.error, OverflowError, ValueError):
        body = None
    if body is None:
        return encode_value(value, ms_to_datetime(timestamp_ms))
    body += _T_ELEMENT + _I64.pack(timestamp_ms)
    return _I32.pack(len(body) + 5) + body + b"\x00"


# Element names already encoded (`name\x00`): an OTAEvent's six keys, every publish. Bounded: keys come from the
# interfaces' mappings, but a caller may invent more.
_NAMES: dict[str, bytes] = {}
_NAMES_MAX = 4096
# String elements already encoded, by (encoded name, value): an OTAEvent's requestUUID, status, statusCode and
# message repeat over its operation's 26 events (only statusProgress changes), so each is encoded once per
# operation instead of once per event. Cleared when full: any value may come through.
_STRINGS: dict[tuple[bytes, str], bytes] = {}
_STRINGS_MAX = 4096
_ZERO = dt.timedelta(0)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)


def _fast_document(doc: dict[str, object]) -> bytes | None:
    """py-bson's `encode_document` for str/bool/int64/float/aware datetime/None/dict values, else None."""
    body = _fast_elements(doc)
    return None if body is None else _I32.pack(len(body) + 5) + body + b"\x00"


def _fast_elements(doc: dict[str, object]) -> bytes | None:
    """The elements of `_fast_document` (the document without its length and trailing NUL), or None."""
    parts: list[bytes] = []
    append = parts.append
    for key, value in doc.items():
        if type(key) is not str:
            return None
        name = _NAMES.get(key)
        if name is None:
            if "\x00" in key:
                return None
            name = key.encode("utf-8") + b"\x00"
            if len(_NAMES) < _NAMES_MAX:
                _NAMES[key] = name
        kind = type(value)
        if kind is str:
            text: str = value  # type: ignore[assignment]
            element = _STRINGS.get((name, text))
            if element is None:
                raw = text.encode("utf-8")
                element = b"\x02" + name + _I32.pack(len(raw) + 1) + raw + b"\x00"
                if len(_STRINGS) >= _STRINGS_MAX:
                    _STRINGS.clear()
                _STRINGS[(name, text)] = element
            append(element)
        elif kind is int:
            number: int = value  # type: ignore[assignment]
            if -0x80000000 <= number <= 0x7FFFFFFF:
                append(b"\x10" + name + _I32.pack(number))
            elif -0x8000000000000000 <= number <= 0x7FFFFFFFFFFFFFFF:
                append(b"\x12" + name + _I64.pack(number))
            else:
                return None  # uint64 or an error: py-bson decides
        elif kind is dict:
            sub = _fast_document(value)  # type: ignore[arg-type]
            if sub is None:
                return None
            append(b"\x03" + name + sub)
        elif kind is dt.datetime and value.tzinfo is not None:  # type: ignore[attr-defined]
            append(b"\x09" + name + _I64.pack(_utc_ms(value)))  # type: ignore[arg-type]
        elif kind is bool:
            append(b"\x08" + name + (b"\x01" if value else b"\x00"))
        elif kind is float:
            append(b"\x01" + name + _F64.pack(value))
        elif value is None:
            append(b"\x0a" + name)
        else:
            return None
    return b"".join(parts)


def _utc_ms(when: dt.datetime) -> int:
    """codec.py `encode_utc_datetime_element`: round(timegm(utctimetuple()) * 1000 + microsecond / 1000.0).

    With a zero UTC offset (every OTAEvent's `t`: ms_to_datetime) the whole seconds since the epoch are those of
    the naive difference, ~1 us instead of ~4 us for utctimetuple + timegm; the same arithmetic after that.
    Any other offset takes py-bson's own formula (an offset with seconds shifts whole seconds differently)."""
    if when.utcoffset() == _ZERO:
        delta = when.replace(tzinfo=None) - _NAIVE_EPOCH
        seconds = delta.days * 86400 + delta.seconds
    else:
        seconds = calendar.timegm(when.utctimetuple())
    return round(seconds * 1000 + (when.microsecond / 1000.0))


def qos_for(interface: Interface, path: str) -> int:
    """QoS of a publish: 2 for properties, the mapping's reliability, an object's first mapping's."""
    try:
        qos: int = interface.get_reliability(path)
    except Exception as exc:  # InterfaceNotFoundError: path not in the interface
        raise PublishError("validation", str(exc)) from exc
    return qos


def introspection_payload(interfaces: Iterable[Interface]) -> bytes:
    """`name:major:minor;...` over every interface in introspection order (`__send_introspection`)."""
    text = "".join(f"{i.name}:{i.version_major}:{i.version_minor};" for i in interfaces)[:-1]
    return text.encode("utf-8")  # paho encodes a str payload as UTF-8


def producer_properties_payload(
    paths: Iterable[str], byteorder: Literal["little", "big"] = "little"
) -> bytes:
    """4-byte length + zlib(`iface/path;iface/path`) (`__send_device_owned_properties`).

    The SDK writes the length LITTLE-endian; the Astarte protocol document says big-endian (docs/protocol.md
    section 1: a known divergence). Default = the SDK, byte for byte; byteorder="big" gives the spec's form.
    The length is `len()` of the str, as the SDK computes it (equal to the byte length for ASCII paths).
    """
    text = ";".join(paths)
    key = (text, byteorder)
    payload = _PRODUCER_PAYLOADS.get(key)
    if payload is None:
        # Every device of a fleet sends the same few lists (the properties it set), on every connect without a
        # session, i.e. after every simulated reboot: zlib took ~18 us each time. Bounded, like _NAMES.
        payload = len(text).to_bytes(4, byteorder=byteorder) + zlib.compress(text.encode("utf-8"))
        if len(_PRODUCER_PAYLOADS) < _PRODUCER_PAYLOADS_MAX:
            _PRODUCER_PAYLOADS[key] = payload
    return payload


_PRODUCER_PAYLOADS: dict[tuple[str, str], bytes] = {}
_PRODUCER_PAYLOADS_MAX = 256


def decode_properties_list(payload: bytes) -> list[str]:
    """Paths of a consumer/properties purge message (`__purge_server_properties`: skips 4 bytes)."""
    try:
        text = zlib.decompress(payload[4:]).decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise WireError(f"malformed properties list: {exc}") from exc
    return text.split(";") if text else []


def decode_server_message(
    realm: str, device_id: str, topic: str, payload: bytes, interfaces: Mapping[str, Interface]
) -> ServerMessage:
    """Decode and check server-owned data like the SDK (`__on_message`, `_on_message_generic`).

    Raises WireError for what the SDK would log and drop: wrong prefix, not BSON / no "v", unknown or
    device-owned interface, empty payload on a non-resettable endpoint, path or payload not matching.
    """
    base = base_topic(realm, device_id) + "/"
    if not topic.startswith(base):
        raise WireError(f"unexpected topic {topic}")
    value: Any = None
    if payload:
        try:
            doc = bson.loads(payload)
        except Exception as exc:  # py-bson raises assorted errors on garbage
            raise WireError(f"payload on {topic} is not BSON: {exc}") from exc
        if not isinstance(doc, dict) or "v" not in doc:
            raise WireError(f"BSON on {topic} has no 'v'")
        value = doc["v"]
    tokens = topic[len(base):].split("/")
    name, path = tokens[0], "/" + "/".join(tokens[1:])
    iface = interfaces.get(name)
    if iface is None:
        raise WireError(f"interface {name} not in the introspection")
    if not iface.is_server_owned():
        raise WireError(f"interface {name} is device-owned")
    if value is None and not iface.is_property_endpoint_resettable(path):
        raise WireError(f"empty payload for non-resettable {name}{path}")
    try:
        iface.validate_path(path, value)
        if value:
            iface.validate_payload(path, value)
    except ValidationError as exc:
        raise WireError(f"{name}{path}: {exc}") from exc
    return ServerMessage(name, path, value)


# ---- validation of outgoing data: the SDK's checks, in the SDK's order ----------------------------


def _owned(interfaces: Mapping[str, Interface], name: str) -> Interface:
    iface = interfaces.get(name)
    if iface is None:
        raise PublishError("validation", f"Interface {name} not declared in introspection")
    if iface.is_server_owned():
        raise PublishError("validation", f"The interface {name} is not owned by the device.")
    return iface


# validate_publish's memo, one per interface (an attribute of as_interfaces' copies): (path, shape of the value,
# timestamp given) -> the value checks still to make on each publish of that shape ((key, kind), key None for
# an individual value; kind "int32" or "finite"). The SDK's checks of a publish are its type checks, exact
# (`type(x) is t`: the shape holds the exact types), the mapping's existence and the completeness of an object
# (the shape holds the path and keys), the timestamp's presence -- and two that read the value: int32 range
# ("integer") and finiteness ("double"), redone here every time. Lists are never memoized (each element's type
# counts). ~15 us of the SDK's validation of one OTAEvent became ~2 us (bench/profile_hot_path.py: 7.6% of the
# engine's CPU was validate_publish).
_ACCEPTED = "_fleetsim_accepted"
_MIN_INT32, _MAX_INT32 = -2147483648, 2147483647  # mapping.py `_validate_element`
Shape = tuple[str, object, bool]


def _shape(path: str, value: object, timestamp: object) -> Shape | None:
    kind = type(value)
    if kind is dict:
        types = tuple(map(type, value.values()))  # type: ignore[attr-defined]
        if list in types:
            return None
        return path, (tuple(value), types), bool(timestamp)  # type: ignore[arg-type]
    if kind is list:
        return None
    return path, kind, bool(timestamp)


def _value_checks(iface: Interface, path: str, value: object) -> tuple[tuple[str | None, str], ...]:
    """The checks of `value` that read it, not only its type (mapping.py `_validate_element`)."""
    pairs = ([(k, iface.get_mapping(f"{path}/{k}")) for k in value]
             if type(value) is dict else [(None, iface.get_mapping(path))])
    out: list[tuple[str | None, str]] = []
    for key, mapping in pairs:
        if mapping.type == "integer":
            out.append((key, "int32"))
        elif mapping.type == "double":
            out.append((key, "finite"))
    return tuple(out)


def _passes(value: object, checks: tuple[tuple[str | None, str], ...]) -> bool:
    for key, kind in checks:
        item: Any = value if key is None else value[key]  # type: ignore[index]
        if kind == "int32" and not _MIN_INT32 <= item <= _MAX_INT32:
            return False
        if kind == "finite" and not math.isfinite(item):
            return False
    return True


def validate_publish_at(
    interfaces: Mapping[str, Interface], name: str, path: str, value: object, timestamp_ms: int | None
) -> Interface:
    """`validate_publish(..., ms_to_datetime(timestamp_ms))`; the datetime is made only when the memo does not
    answer (the SDK's code needs it), since a memoized shape knows only whether there is a timestamp."""
    iface = interfaces.get(name)
    memo: dict[Shape, tuple[tuple[str | None, str], ...]] | None = getattr(iface, _ACCEPTED, None)
    if memo is not None:
        shape = _shape(path, value, timestamp_ms is not None)
        if shape is not None:
            checks = memo.get(shape)
            if checks is not None and _passes(value, checks):
                return iface  # memo is not None: iface is an Interface
    ts = ms_to_datetime(timestamp_ms) if timestamp_ms is not None else None
    return validate_publish(interfaces, name, path, value, ts)


def validate_publish(
    interfaces: Mapping[str, Interface], name: str, path: str, value: object, timestamp: dt.datetime | None
) -> Interface:
    """device.py `send` / `send_aggregate` checks + `Interface.validate_payload_and_timestamp`.

    Raises PublishError("validation", <the SDK's message>); returns the interface. A value whose shape passed
    before is checked only where the SDK reads the value itself (see _ACCEPTED); anything else, and anything
    those checks refuse, goes through the SDK's code, which raises its own message.
    """
    iface = interfaces.get(name)
    memo: dict[Shape, tuple[tuple[str | None, str], ...]] | None = getattr(iface, _ACCEPTED, None)
    shape = None if memo is None else _shape(path, value, timestamp)
    if shape is not None and memo is not None:
        checks = memo.get(shape)
        if checks is not None and _passes(value, checks):
            return iface  # memo is not None: iface is an Interface
    iface = _sdk_validate_publish(interfaces, name, path, value, timestamp)
    if shape is not None and memo is not None:
        memo[shape] = _value_checks(iface, path, value)
    return iface


def _sdk_validate_publish(
    interfaces: Mapping[str, Interface], name: str, path: str, value: object, timestamp: dt.datetime | None
) -> Interface:
    iface = _owned(interfaces, name)
    if value is None:
        raise PublishError("validation", "Payload should be different from None")
    if iface.is_aggregation_object():
        if not isinstance(value, collections.abc.Mapping):
            raise PublishError("validation", "Payload for aggregate interfaces should be a dictionary")
    elif isinstance(value, collections.abc.Mapping):
        raise PublishError("validation", "Payload for individual interfaces should not be a dictionary")
    try:
        iface.validate_payload_and_timestamp(path, value, timestamp)
    except ValidationError as exc:
        raise PublishError("validation", str(exc)) from exc
    return iface


def validate_property(interfaces: Mapping[str, Interface], name: str, path: str, value: object) -> Interface:
    """Set (device.py `send`, no timestamp) or unset (`unset_property` + `_send_generic`'s mapping check)."""
    if value is not None:
        iface = validate_publish(interfaces, name, path, value, None)
        if not iface.is_type_properties():
            raise PublishError("validation", f"Interface {name} is a datastream interface, not properties")
        return iface
    iface = _owned(interfaces, name)
    if not iface.is_type_properties():
        raise PublishError(
            "validation", f"Interface {name} is a datastream interface. You can only unset a property."
        )
    if not iface.get_mapping(path):
        raise PublishError("validation", f"Path {path} not in the {name} interface.")
    return iface
