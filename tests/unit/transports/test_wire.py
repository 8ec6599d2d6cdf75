"""wire.py produces exactly what astarte-device-sdk 0.14.0 publishes: the SDK's own DeviceMqtt is driven with
a recording stand-in for its paho client, and every topic, payload byte and QoS is compared."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import zlib
from pathlib import Path
from typing import Any

import bson
import pytest
from astarte.device import DeviceMqtt
from astarte.device.device import ConnectionState
from astarte.device.interface import Interface
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.transports import wire
from simulator.transports.base import PublishError

REALM = "test"
DEV = "2TBn-jNESuuHamE2Zo1anA"
IFACE_DIR = Path(__file__).resolve().parents[3] / "simulator" / "interfaces"
OTA = "io.edgehog.devicemanager.OTAEvent"


def _load() -> dict[str, Interface]:
    return {
        i.name: i for i in (Interface(json.loads(p.read_text())) for p in sorted(IFACE_DIR.glob("*.json")))
    }


class _Recorder:
    """Stands in for the SDK's paho client: records what the SDK would put on the wire."""

    def __init__(self) -> None:
        self.out: list[tuple[str, str, bytes, int]] = []

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self.out.append(("publish", topic, data, qos))

    def subscribe(self, topic: str, qos: int = 0) -> None:
        self.out.append(("subscribe", topic, b"", qos))


@pytest.fixture
def sdk(tmp_path: Path) -> tuple[DeviceMqtt, _Recorder]:
    device = DeviceMqtt(DEV, REALM, "secret", "http://127.0.0.1:1/pairing", str(tmp_path))
    for p in sorted(IFACE_DIR.glob("*.json")):
        device.add_interface_from_json(json.loads(p.read_text()))
    rec = _Recorder()
    device._DeviceMqtt__mqtt_client = rec  # type: ignore[attr-defined]
    device._DeviceMqtt__connection_state = ConnectionState.CONNECTED  # type: ignore[attr-defined]
    return device, rec


UUID = "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10"


def _ota(uuid: str = UUID, status: str = "Downloading", p: int = 40) -> dict[str, Any]:
    return {"requestUUID": uuid, "status": status, "statusProgress": p, "statusCode": "", "message": ""}


def test_ota_event_bytes_topic_qos(sdk: tuple[DeviceMqtt, _Recorder]) -> None:
    device, rec = sdk
    ms = 1_700_000_123_456
    ts = wire.ms_to_datetime(ms)
    device.send_aggregate(OTA, "/event", _ota(), ts)
    _, topic, payload, qos = rec.out[-1]
    ifaces = _load()
    wire.validate_publish(ifaces, OTA, "/event", _ota(), ts)
    assert topic == wire.data_topic(REALM, DEV, OTA, "/event")
    assert payload == wire.encode_value(_ota(), ts)
    assert qos == wire.qos_for(ifaces[OTA], "/event") == 2
    assert bson.loads(payload)["t"] == ts  # millisecond exact
    assert wire._fast_document({"v": _ota(), "t": ts}) == payload  # the fast path, not the fallback
    assert 140 < len(payload) < 200  # docs/protocol.md: about 153 bytes


@settings(max_examples=40, deadline=None)
@given(
    status=st.sampled_from(["Acknowledged", "Downloading", "Deploying", "Success", "Failure", "Error"]),
    progress=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    message=st.text(max_size=40),
    ms=st.integers(min_value=0, max_value=4_102_444_800_000),
)
def test_ota_event_bytes_property(
    tmp_path_factory: pytest.TempPathFactory, status: str, progress: int, message: str, ms: int
) -> None:
    device = DeviceMqtt(DEV, REALM, "s", "http://127.0.0.1:1/pairing", str(tmp_path_factory.mktemp("p")))
    device.add_interface_from_json(json.loads((IFACE_DIR / f"{OTA}.json").read_text()))
    rec = _Recorder()
    device._DeviceMqtt__mqtt_client = rec  # type: ignore[attr-defined]
    device._DeviceMqtt__connection_state = ConnectionState.CONNECTED  # type: ignore[attr-defined]
    value = {**_ota(status=status, p=progress), "message": message}
    ts = wire.ms_to_datetime(ms)
    device.send_aggregate(OTA, "/event", value, ts)
    assert rec.out[-1][2] == wire.encode_value(value, ts)


def test_individual_property_set_and_unset(sdk: tuple[DeviceMqtt, _Recorder]) -> None:
    device, rec = sdk
    ifaces = _load()
    name = "io.edgehog.devicemanager.BaseImage"
    device.send(name, "/version", "1.2.3")
    wire.validate_property(ifaces, name, "/version", "1.2.3")
    assert rec.out[-1] == (
        "publish",
        wire.data_topic(REALM, DEV, name, "/version"),
        wire.encode_value("1.2.3", None),
        wire.PROPERTIES_QOS,
    )
    device.unset_property(name, "/version")
    wire.validate_property(ifaces, name, "/version", None)
    assert rec.out[-1][2] == wire.encode_value(None, None) == b""


def test_handshake_sequence_identical(sdk: tuple[DeviceMqtt, _Recorder]) -> None:
    """No session present: subscriptions, introspection, emptyCache, device props, producer/properties."""
    device, rec = sdk
    device.send("io.edgehog.devicemanager.BaseImage", "/version", "1.2.3")
    device.send("io.edgehog.devicemanager.OSInfo", "/osName", "Linux")
    rec.out.clear()
    device._DeviceMqtt__on_connect(None, None, {"session present": 0}, 0)  # type: ignore[attr-defined]

    ifaces = _load()
    # The SDK's introspection is in interface-add order; ours in the mapping's order: add in the same order.
    sdk_order = [i.name for i in device._introspection.get_all_interfaces()]
    ordered = {n: ifaces[n] for n in sdk_order}
    props = [
        ("io.edgehog.devicemanager.BaseImage", "/version", "1.2.3"),
        ("io.edgehog.devicemanager.OSInfo", "/osName", "Linux"),
    ]
    expected = [("subscribe", t, b"", 2) for t in wire.handshake_subscriptions(REALM, DEV, ordered.values())]
    expected.append(("publish", wire.base_topic(REALM, DEV), wire.introspection_payload(ordered.values()), 2))
    expected.append(("publish", wire.empty_cache_topic(REALM, DEV), wire.EMPTY_CACHE_PAYLOAD, 2))
    expected += [
        ("publish", wire.data_topic(REALM, DEV, n, p), wire.encode_value(v, None), 2) for n, p, v in props
    ]
    expected.append(
        (
            "publish",
            wire.producer_properties_topic(REALM, DEV),
            wire.producer_properties_payload([n + p for n, p, _ in props]),
            2,
        )
    )
    assert rec.out == expected
    intro = wire.introspection_payload(ordered.values()).decode()
    assert "io.edgehog.devicemanager.OTAEvent:0:1" in intro.split(";")
    assert "io.edgehog.devicemanager.OTARequest:1:0" in intro.split(";")


def test_producer_properties_little_endian_like_the_sdk() -> None:
    payload = wire.producer_properties_payload(["a.b/c", "d.e/f"])
    assert payload[:4] == (11).to_bytes(4, "little")
    assert zlib.decompress(payload[4:]) == b"a.b/c;d.e/f"
    assert wire.producer_properties_payload(["a.b/c"], byteorder="big")[:4] == b"\x00\x00\x00\x05"
    assert wire.producer_properties_payload([])[:4] == b"\x00\x00\x00\x00"
    assert wire.decode_properties_list(payload) == ["a.b/c", "d.e/f"]


def test_decode_ota_request_like_the_sdk(sdk: tuple[DeviceMqtt, _Recorder]) -> None:
    device, _ = sdk
    got: list[tuple[str, str, object]] = []
    device.set_events_callbacks(on_data_received=lambda _d, i, p, v: got.append((i, p, v)))
    req = {"operation": "Update", "url": "https://x/y.bin", "uuid": "4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10"}
    topic = f"{REALM}/{DEV}/io.edgehog.devicemanager.OTARequest/request"
    payload = bson.dumps({"v": req})

    class Msg:
        pass

    msg = Msg()
    msg.topic, msg.payload = topic, payload  # type: ignore[attr-defined]
    device._DeviceMqtt__on_message(None, None, msg)  # type: ignore[attr-defined]
    ours = wire.decode_server_message(REALM, DEV, topic, payload, _load())
    assert got == [(ours.interface, ours.path, ours.value)]
    assert ours.value == req


@pytest.mark.parametrize(
    ("topic_tail", "payload", "why"),
    [
        ("io.edgehog.devicemanager.OTARequest/request", b"garbage", "not BSON"),
        ("io.edgehog.devicemanager.OTARequest/request", bson.dumps({"x": 1}), "no 'v'"),
        ("io.edgehog.devicemanager.OTAEvent/event", bson.dumps({"v": {}}), "device-owned"),
        ("io.example.Unknown/x", bson.dumps({"v": 1}), "not in the introspection"),
        ("io.edgehog.devicemanager.OTARequest/request", b"", "non-resettable"),
        ("io.edgehog.devicemanager.OTARequest/request", bson.dumps({"v": {"operation": 3}}), "request"),
    ],
)
def test_decode_rejects_what_the_sdk_drops(topic_tail: str, payload: bytes, why: str) -> None:
    with pytest.raises(wire.WireError, match=why):
        wire.decode_server_message(REALM, DEV, f"{REALM}/{DEV}/{topic_tail}", payload, _load())


@pytest.mark.parametrize(
    ("name", "path", "value", "ts", "why"),
    [
        (OTA, "/event", _ota(), None, "Timestamp required"),
        (OTA, "/event", {**_ota(), "statusProgress": 2**31}, dt.datetime.now(dt.UTC), "int32"),
        (
            OTA,
            "/event",
            {k: v for k, v in _ota().items() if k != "message"},
            dt.datetime.now(dt.UTC),
            "not in payload",
        ),
        (OTA, "/event", {**_ota(), "statusProgress": 1.0}, dt.datetime.now(dt.UTC), "integer but found"),
        (OTA, "/event", "x", dt.datetime.now(dt.UTC), "should be a dictionary"),
        ("io.edgehog.devicemanager.OTARequest", "/request", {}, None, "not owned"),
        ("io.example.Nope", "/x", 1, None, "not declared"),
        (OTA, "/event", None, None, "different from None"),
    ],
)
def test_validation_is_the_sdks(name: str, path: str, value: Any, ts: dt.datetime | None, why: str) -> None:
    with pytest.raises(PublishError, match=why) as err:
        wire.validate_publish(_load(), name, path, value, ts)
    assert err.value.reason == "validation"


def test_property_validation() -> None:
    ifaces = _load()
    with pytest.raises(PublishError, match="datastream"):
        wire.validate_property(ifaces, OTA, "/event", None)
    with pytest.raises(PublishError, match="not in the"):
        wire.validate_property(ifaces, "io.edgehog.devicemanager.BaseImage", "/nope", None)
    with pytest.raises(PublishError, match="string but found"):
        wire.validate_property(ifaces, "io.edgehog.devicemanager.BaseImage", "/version", 3)


def test_as_interfaces_accepts_json_and_keeps_order() -> None:
    raw = {p.stem: json.loads(p.read_text()) for p in sorted(IFACE_DIR.glob("*.json"), reverse=True)}
    got = wire.as_interfaces(raw)
    assert list(got) == list(raw)
    assert all(isinstance(i, Interface) for i in got.values())


_leaf = st.one_of(
    st.text(),
    st.booleans(),
    st.none(),
    st.binary(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.datetimes(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
)
_values = st.recursive(
    _leaf, lambda inner: st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=8
)


@settings(max_examples=300, deadline=None)
@given(value=_values, ms=st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**42)))
def test_encoder_is_byte_identical_to_py_bson(value: Any, ms: int | None) -> None:
    """The fast path and its fallback together equal the SDK's `bson.dumps({"v":..., "t":...})`."""
    import warnings

    ts = wire.ms_to_datetime(ms) if ms is not None else None
    if value is None:
        assert wire.encode_value(value, ts) == b""
        return
    doc: dict[str, Any] = {"v": value}
    if ts:
        doc["t"] = ts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # py-bson warns on naive datetimes
        try:
            expected = bson.dumps(doc)
        except Exception as exc:  # py-bson refuses (NUL in a key, > uint64, ...): so must we
            with pytest.raises(type(exc)):
                wire.encode_value(value, ts)
            return
        assert wire.encode_value(value, ts) == expected


def test_memoized_validation_still_refuses_what_the_sdk_refuses() -> None:
    ifaces = wire.as_interfaces(_load())  # the transports' interfaces: memoizing copies
    ts = dt.datetime.now(dt.UTC)
    wire.validate_publish(ifaces, OTA, "/event", _ota(), ts)  # this shape is now memoized
    memo = getattr(ifaces[OTA], wire._ACCEPTED)
    shape = ("/event", (tuple(_ota()), tuple(type(v) for v in _ota().values())), True)
    assert memo == {shape: (("statusProgress", "int32"),)}
    assert wire.validate_publish(ifaces, OTA, "/event", _ota(p=99), ts) is ifaces[OTA]
    refused = [
        ({**_ota(), "statusProgress": 2**31}, ts, "int32"),  # same shape, the value check refuses it
        ({**_ota(), "statusProgress": -(2**31) - 1}, ts, "int32"),
        ({**_ota(), "statusProgress": True}, ts, "integer but found"),  # another shape: the SDK decides
        (_ota(), None, "Timestamp required"),
        ({k: v for k, v in _ota().items() if k != "message"}, ts, "not in payload"),
        ({**_ota(), "extra": "x"}, ts, "not in the"),
    ]
    for value, when, why in refused:
        with pytest.raises(PublishError, match=why):
            wire.validate_publish(ifaces, OTA, "/event", value, when)
    assert len(memo) == 1  # refused shapes are never memoized


def test_memoized_validation_of_individual_double_and_integer_values() -> None:
    sensor = {"interface_name": "org.example.Sensor", "version_major": 0, "version_minor": 1,
              "type": "datastream", "ownership": "device",
              "mappings": [{"endpoint": "/value", "type": "double"}, {"endpoint": "/count", "type": "integer"}]}
    ifaces = wire.as_interfaces({"org.example.Sensor": sensor})
    name = "org.example.Sensor"
    wire.validate_publish(ifaces, name, "/value", 1.5, None)
    wire.validate_publish(ifaces, name, "/count", 7, None)
    assert set(getattr(ifaces[name], wire._ACCEPTED).values()) == {((None, "finite"),), ((None, "int32"),)}
    wire.validate_publish(ifaces, name, "/value", 2.5, None)  # memoized
    for path, bad, why in (("/value", float("nan"), "Invalid float"), ("/value", float("inf"), "Invalid float"),
                           ("/count", 2**31, "int32"), ("/value", 1, "double but found")):
        with pytest.raises(PublishError, match=why):
            wire.validate_publish(ifaces, name, path, bad, None)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(0), "Z"),
                                               dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                               dt.timezone(dt.timedelta(hours=-7, seconds=12, microseconds=5))])))
def test_datetime_milliseconds_are_py_bsons(when: dt.datetime) -> None:
    assert wire._utc_ms(when) == round(calendar.timegm(when.utctimetuple()) * 1000 + when.microsecond / 1000.0)
    assert wire._fast_document({"t": when}) == bson.dumps({"t": when})


@settings(max_examples=300, deadline=None)
@given(value=_values, ms=st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**42),
                                   st.sampled_from([wire._MIN_MS - 1, wire._MIN_MS, wire._MAX_MS - 1,
                                                    wire._MAX_MS, -(2**70)])))
def test_encoding_from_milliseconds_is_encoding_from_their_datetime(value: Any, ms: int | None) -> None:
    """encode_value_at(v, ms) == encode_value(v, ms_to_datetime(ms)): the same bytes, or the same error."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # py-bson warns on naive datetimes
        try:
            expected = wire.encode_value(value, wire.ms_to_datetime(ms) if ms is not None else None)
        except Exception as exc:  # out of datetime's range, or refused by py-bson: so must the _at form
            with pytest.raises(type(exc)):
                wire.encode_value_at(value, ms)
            return
        assert wire.encode_value_at(value, ms) == expected


def test_ota_event_from_milliseconds_is_the_sdks_bytes(sdk: tuple[DeviceMqtt, _Recorder]) -> None:
    device, rec = sdk
    ms = 1_700_000_123_456
    device.send_aggregate(OTA, "/event", _ota(), wire.ms_to_datetime(ms))
    assert rec.out[-1][2] == wire.encode_value_at(_ota(), ms)


def test_validation_from_milliseconds_is_validation_from_their_datetime() -> None:
    ifaces = wire.as_interfaces(_load())
    ms = 1_700_000_123_456
    assert wire.validate_publish_at(ifaces, OTA, "/event", _ota(), ms) is ifaces[OTA]  # the SDK's code, memoized
    assert len(getattr(ifaces[OTA], wire._ACCEPTED)) == 1
    assert wire.validate_publish_at(ifaces, OTA, "/event", _ota(p=7), 0) is ifaces[OTA]  # memo; 0 is a timestamp
    for value, when, why in (({**_ota(), "statusProgress": 2**31}, ms, "int32"), (_ota(), None, "Timestamp required"),
                             ({**_ota(), "extra": "x"}, ms, "not in the")):
        with pytest.raises(PublishError, match=why):
            wire.validate_publish_at(ifaces, OTA, "/event", value, when)
    with pytest.raises(PublishError, match="not declared in introspection"):  # unknown interface: the SDK's message
        wire.validate_publish_at(ifaces, "org.example.Missing", "/x", 1, ms)


def test_producer_properties_payload_is_the_same_from_its_cache() -> None:
    paths = ["io.edgehog.devicemanager.BaseImage/version", "io.edgehog.devicemanager.OSInfo/name"]
    first = wire.producer_properties_payload(paths)
    assert wire.producer_properties_payload(list(paths)) == first
    assert zlib.decompress(first[4:]).decode() == ";".join(paths)
    assert wire.producer_properties_payload(paths, byteorder="big")[:4] == len(";".join(paths)).to_bytes(4, "big")


def test_string_elements_from_their_cache_are_py_bsons_bytes_and_the_cache_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_STRINGS", {})
    monkeypatch.setattr(wire, "_STRINGS_MAX", 8)
    ms = 1_700_000_000_123
    ts = wire.ms_to_datetime(ms)
    for progress in range(3):  # one operation's events: the same strings each time, from the cache after the first
        value = {**_ota(p=progress), "message": "héllo\u20ac"}
        assert wire.encode_value_at(value, ms) == bson.dumps({"v": value, "t": ts})
    assert (b"message\x00", "héllo\u20ac") in wire._STRINGS
    same_text = {"status": "x", "statusCode": "x", "message": "x"}  # one text under three names: three elements
    assert wire.encode_value_at(same_text, ms) == bson.dumps({"v": same_text, "t": ts})
    for i in range(20):  # more distinct strings than the cache holds: cleared, never over its bound
        assert wire.encode_value_at({"message": f"m{i}"}, ms) == bson.dumps({"v": {"message": f"m{i}"}, "t": ts})
        assert len(wire._STRINGS) <= 8
