"""LeanClient's buffered reader against paho's own: the same packets (paho's encoder's bytes) arriving in any
split -- one byte at a time, whole bursts, a remaining length of several bytes -- reach paho's handlers with
the same fields, and leave nothing behind; a malformed length is paho's protocol error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.transports.lean_client import LeanClient
from simulator.transports.mqtt_frames import MALFORMED, complete_packet
from tests.unit.mqtt_fakes import FakeSocket, publish_bytes


def _received(client_type: type[mqtt.Client], chunks: list[bytes]) -> tuple[list[tuple[str, bytes, int]], Any]:
    client = client_type(CallbackAPIVersion.VERSION2)
    got: list[tuple[str, bytes, int]] = []
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.qos))
    sock = FakeSocket(chunks)
    client._sock = sock  # type: ignore[assignment]
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    for _ in range(1000):  # as the transport: read until the socket has nothing more
        if client._packet_read() == mqtt.MQTT_ERR_AGAIN:
            break
    return got, sock


STREAM = (publish_bytes("realm/dev/io.edgehog.devicemanager.OTARequest/request", b"\x05" * 300)  # 2-byte length
          + publish_bytes("a/b", b"x") + publish_bytes("realm/dev/t", b""))


def test_same_messages_as_paho_whatever_the_split() -> None:
    expected, paho_sock = _received(mqtt.Client, [STREAM])
    assert [t for t, _, _ in expected] == ["realm/dev/io.edgehog.devicemanager.OTARequest/request", "a/b",
                                          "realm/dev/t"]
    for chunks in ([STREAM], [bytes([b]) for b in STREAM], [STREAM[:2], STREAM[2:305], STREAM[305:]]):
        got, sock = _received(LeanClient, chunks)
        assert got == expected
    whole, sock = _received(LeanClient, [STREAM])
    assert whole == expected
    assert sock.recvs == 1 < paho_sock.recvs  # one read for the burst; paho reads three times per packet


def test_a_partial_packet_waits_for_its_rest() -> None:
    client = LeanClient(CallbackAPIVersion.VERSION2)
    got: list[str] = []
    client.on_message = lambda c, u, m: got.append(m.topic)
    client._sock = FakeSocket([STREAM[:100]])  # type: ignore[assignment]
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    assert client._packet_read() == mqtt.MQTT_ERR_AGAIN and got == [] and not client.lean_buffered()
    client._sock = FakeSocket([STREAM[100:]])  # type: ignore[assignment]
    assert client._packet_read() == mqtt.MQTT_ERR_SUCCESS and len(got) == 1
    assert client.lean_buffered()  # the next two are read already: the transport serves it again
    assert client._packet_read() == mqtt.MQTT_ERR_SUCCESS and client._packet_read() == mqtt.MQTT_ERR_SUCCESS
    assert len(got) == 3 and not client.lean_buffered()


def test_remaining_length_decoding_and_bounds() -> None:
    assert complete_packet(bytearray(b"\x50\x02\x00\x01")) == (2, 2)  # a PUBREC
    assert complete_packet(bytearray(b"\x50\x02\x00")) is None
    assert complete_packet(bytearray(b"\x30")) is None
    assert complete_packet(bytearray(b"\x30\x80\x01" + b"x" * 128)) == (3, 128)
    assert complete_packet(bytearray(b"\x30\x80\x01" + b"x" * 127)) is None
    assert complete_packet(bytearray(b"\xd0\x00")) == (2, 0)  # PINGRESP: no body
    assert complete_packet(bytearray(b"\x30\xff\xff\xff\xff\x01")) is MALFORMED  # 5 length bytes


def test_malformed_length_is_a_protocol_error_and_eof_a_lost_connection() -> None:
    client = LeanClient(CallbackAPIVersion.VERSION2)
    client._sock = FakeSocket([b"\x30\xff\xff\xff\xff\x01"])  # type: ignore[assignment]
    assert client._packet_read() == mqtt.MQTT_ERR_PROTOCOL
    client = LeanClient(CallbackAPIVersion.VERSION2)
    client._sock = FakeSocket([b""])  # type: ignore[assignment]
    assert client._packet_read() == mqtt.MQTT_ERR_CONN_LOST


# ---- the QoS 1/2 flow: LeanClient's steps against paho's own, on the same inputs ----


class SinkSocket(FakeSocket):
    """Takes every write whole; reads come from `chunks`."""

    def __init__(self, chunks: list[bytes] | None = None) -> None:
        super().__init__(chunks or [])
        self.sent = bytearray()

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)


def _connected(client_type: type[mqtt.Client], max_inflight: int = 20) -> tuple[mqtt.Client, SinkSocket, list[int]]:
    client = client_type(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(max_inflight)
    acked: list[int] = []
    client.on_publish = lambda c, u, mid, reason, props: acked.append(mid)
    sock = SinkSocket()
    client._sock = sock  # type: ignore[assignment]
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    return client, sock, acked


def _state(client: mqtt.Client) -> list[tuple[int, str, bytes, int, object]]:
    return [(m.mid, m.topic, m.payload, m.qos, m.state) for m in client._out_messages.values()]


def test_publish_writes_paho_bytes_and_keeps_paho_state() -> None:
    topic = "realm/dev/io.edgehog.devicemanager.OTAEvent/event"
    payloads = [b"\x99" * 153, b"x" * 200, b"", b"y" * 20000]  # 1-, 2- and 3-byte remaining lengths
    theirs, their_sock, _ = _connected(mqtt.Client, max_inflight=2)
    ours, our_sock, _ = _connected(LeanClient, max_inflight=2)
    for qos in (1, 2):
        for payload in payloads:
            a, b = theirs.publish(topic, payload, qos), ours.publish(topic, payload, qos)
            assert (a.mid, a.rc) == (b.mid, b.rc)
    assert our_sock.sent == their_sock.sent  # two in flight written, the rest queued, as paho
    assert _state(ours) == _state(theirs) and ours._inflight_messages == theirs._inflight_messages == 2


def _slots(message: mqtt.MQTTMessage) -> dict[str, object]:
    """Every slot of an MQTTMessage and of its info (the timestamp aside: a clock reading), by name."""
    fields = {name: getattr(message, name) for name in mqtt.MQTTMessage.__slots__ if name not in ("info", "timestamp")}
    info = message.info
    fields["info"] = (type(info), info.mid, info.rc, info._published, info._iterpos)
    return fields


def test_publish_builds_pahos_message_and_packet_from_its_last_topic() -> None:
    """Every publish -- on a topic new to the client (encoded and checked) or on the one before (kept) --
    queues paho's bytes and leaves in `_out_messages` an MQTTMessage whose every slot is what paho's `publish`
    sets; a topic paho refuses is refused each time, never kept."""
    theirs, their_sock, _ = _connected(mqtt.Client, max_inflight=3)
    ours, our_sock, _ = _connected(LeanClient, max_inflight=3)
    topics = ["realm/dev/io.edgehog.devicemanager.OTAEvent/event", "realm/dev/io.edgehog.devicemanager.OTAEvent/event",
              "realm/dév/é", "a/b", "realm/dev/io.edgehog.devicemanager.OTAEvent/event"]
    for qos in (2, 1):
        for topic in topics:
            a, b = theirs.publish(topic, b"\x99" * 153, qos), ours.publish(topic, b"\x99" * 153, qos)
            assert (a.mid, a.rc) == (b.mid, b.rc)
            assert _slots(ours._out_messages[b.mid]) == _slots(theirs._out_messages[a.mid])
            assert ours._lean_topic[0] == topic
    assert our_sock.sent == their_sock.sent
    assert [p["packet"] for p in ours._out_packet] == [p["packet"] for p in theirs._out_packet]  # queued behind
    for bad in ("realm/+/x", "realm/#", "t" * 65536):
        for _ in range(2):
            with pytest.raises(ValueError) as theirs_error:
                theirs.publish(bad, b"x", 2)
            with pytest.raises(ValueError) as ours_error:
                ours.publish(bad, b"x", 2)
            assert str(ours_error.value) == str(theirs_error.value)
        assert ours._lean_topic[0] == topics[-1]


class StingySocket(SinkSocket):
    """Each write takes the next number of bytes of `script` (None: refused, the socket is full), then all."""

    def __init__(self, script: list[int | None]) -> None:
        super().__init__()
        self.script = list(script)
        self.writes: list[int] = []  # length of each write offered

    def send(self, data: bytes) -> int:
        self.writes.append(len(data))
        take = self.script.pop(0) if self.script else len(data)
        if take is None:
            raise BlockingIOError
        self.sent += bytes(data)[:take]
        return take


@pytest.mark.parametrize(("script", "offered"), [
    ([10, None], lambda n: [n, n - 10, n - 10]),  # part taken, the rest refused, offered again
    ([None], lambda n: [n, n]),  # refused whole: the retry offers the same packet, same length
])
def test_a_lone_packet_written_in_parts_leaves_whole_and_in_order(
        script: list[int | None], offered: Callable[[int], list[int]]) -> None:
    """A lone PUBLISH (written as it is, without gathering) that the socket takes in part or refuses: the rest
    is offered again at the same length (what OpenSSL wants of a retried write), and the bytes on the wire
    are paho's, once."""
    theirs, their_sock, _ = _connected(mqtt.Client)
    ours, _, _ = _connected(LeanClient)
    sock = StingySocket(script)
    ours._sock = sock  # type: ignore[assignment]
    topic, payload = "realm/dev/io.edgehog.devicemanager.OTAEvent/event", b"\x99" * 153
    theirs.publish(topic, payload, 2)
    ours.publish(topic, payload, 2)
    assert ours.want_write()  # what was refused waits in the queue
    ours.loop_write()
    assert sock.writes == offered(len(their_sock.sent))
    assert bytes(sock.sent) == bytes(their_sock.sent) and not ours.want_write()


def test_acks_complete_the_flow_as_paho_does() -> None:
    topic = "realm/dev/io.edgehog.devicemanager.OTAEvent/event"
    results = []
    for client_type in (mqtt.Client, LeanClient):
        client, sock, acked = _connected(client_type, max_inflight=1)
        first = client.publish(topic, b"a", 2)
        second = client.publish(topic, b"b", 1)  # queued behind the in-flight limit
        # PUBREC of the first (PUBREL answers), PUBCOMP (the queued one leaves), PUBACK of the second, and an
        # ack of a mid nobody waits for (ignored, as paho).
        sock.chunks = [bytes([0x50, 2, 0, first.mid, 0x70, 2, 0, first.mid, 0x40, 2, 0, second.mid,
                              0x70, 2, 0, 99])]
        while client._packet_read() != mqtt.MQTT_ERR_AGAIN:
            client.loop_write()
        client.loop_write()
        results.append((bytes(sock.sent), acked, first.is_published(), second.is_published(),
                        client._inflight_messages, dict(client._out_messages)))
    assert results[0] == results[1]
    assert results[1][1] == [1, 2] and results[1][4] == 0


def test_inside_a_transport_step_packets_wait_for_the_step_to_end() -> None:
    client, sock, acked = _connected(LeanClient)
    first = client.publish("t/a", b"a", 2)
    second = client.publish("t/b", b"b", 2)
    written = len(sock.sent)
    sock.chunks = [bytes([0x50, 2, 0, first.mid, 0x50, 2, 0, second.mid, 0x70, 2, 0, first.mid])]
    client.lean_defer = True  # LeanTransport._drive around loop_read
    while client._packet_read() != mqtt.MQTT_ERR_AGAIN:
        pass
    client.lean_defer = False
    assert len(sock.sent) == written and client.want_write() and acked == [first.mid]  # two PUBRELs queued
    client.loop_write()
    assert bytes(sock.sent[written:]) == bytes([0x62, 2, 0, first.mid, 0x62, 2, 0, second.mid])  # one write


# ---- CONNACK and SUBACK: the same callbacks, state and writes as paho's own handlers ----


def _connack_and_subacks(client_type: type[mqtt.Client], chunks: list[bytes],
                         out_of_session: bool = False) -> tuple[list[tuple[Any, ...]], Any, bytes, list[int]]:
    """A client after CONNECT (paho's state), whose on_connect publishes two QoS 2 messages and subscribes
    (as the Astarte handshake does); what its callbacks saw, its state, what it wrote, the mids in flight."""
    client = client_type(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1)  # the second handshake publish waits behind the first
    seen: list[tuple[Any, ...]] = []

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        seen.append(("connect", flags.session_present, reason.value, reason.getName(), str(props)))
        c.publish("realm/dev", b"intro", 2)
        c.publish("realm/dev/control/emptyCache", b"1", 2)

    client.on_connect = on_connect
    client.on_subscribe = lambda c, u, mid, codes, props: seen.append(
        ("suback", mid, [(r.value, r.getName()) for r in codes], str(props)))
    sock = SinkSocket(chunks)
    client._sock = sock  # type: ignore[assignment]
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECT_ASYNC
    if out_of_session:  # a message of the former session waits for its resend: paho's own CONNACK path
        old = client._out_messages[7] = mqtt.MQTTMessage(7, b"realm/dev/old")
        old.qos, old.payload, old.state = 2, b"old", mqtt.mqtt_ms_publish  # paho resends it after CONNACK
    while client._packet_read() != mqtt.MQTT_ERR_AGAIN:
        client.loop_write()
    client.loop_write()
    return seen, client._state, bytes(sock.sent), sorted(client._out_messages)


def test_connack_and_subacks_as_paho_handles_them() -> None:
    # CONNACK (session present, then not), SUBACKs granting QoS 2, two topics at once, and a failure (0x80).
    for flags in (0, 1):
        chunks = [bytes([0x20, 2, flags, 0, 0x90, 3, 0, 1, 2, 0x90, 4, 0, 2, 0, 1, 0x90, 3, 0, 3, 0x80])]
        theirs, ours = _connack_and_subacks(mqtt.Client, chunks), _connack_and_subacks(LeanClient, chunks)
        assert ours == theirs
        assert ours[0][0] == ("connect", bool(flags), 0, "Success", str(ours[0][0][4]))
        assert ours[0][1:] == [("suback", 1, [(2, "Granted QoS 2")], ours[0][1][3]),
                               ("suback", 2, [(0, "Granted QoS 0"), (1, "Granted QoS 1")], ours[0][1][3]),
                               ("suback", 3, [(0x80, "Unspecified error")], ours[0][1][3])]
        assert ours[1] == mqtt._ConnectionState.MQTT_CS_CONNECTED and ours[3] == [1, 2]
    byte_split = [bytes([b]) for b in bytes([0x20, 2, 0, 0, 0x90, 3, 0, 1, 2])]
    assert _connack_and_subacks(LeanClient, byte_split) == _connack_and_subacks(mqtt.Client, byte_split)


def test_a_connack_that_is_not_the_plain_case_takes_paho_path() -> None:
    # Refused (not authorized), and accepted with a message of the former session to resend.
    for chunks, old in (([bytes([0x20, 2, 0, 5])], False), ([bytes([0x20, 2, 1, 0])], True)):
        assert _connack_and_subacks(LeanClient, chunks, old) == _connack_and_subacks(mqtt.Client, chunks, old)
    # A SUBACK granting a QoS MQTT does not define: a protocol error for both.
    for client_type in (mqtt.Client, LeanClient):
        client = client_type(CallbackAPIVersion.VERSION2)
        client.on_subscribe = lambda c, u, mid, codes, props: None
        client._sock = SinkSocket([bytes([0x90, 3, 0, 1, 5])])  # type: ignore[assignment]
        assert client._packet_read() == mqtt.MQTT_ERR_PROTOCOL


def test_disconnect_as_paho_writes_it() -> None:
    results = []
    for client_type in (mqtt.Client, LeanClient):
        client, sock, _ = _connected(client_type)
        seen: list[tuple[Any, ...]] = []
        client.on_disconnect = lambda c, u, flags, reason, props, seen=seen: seen.append(
            (flags.is_disconnect_packet_from_server, reason.value, reason.getName(), str(props)))
        closed: list[bool] = []
        client.on_socket_close = lambda c, u, s, closed=closed: closed.append(True)
        assert client.disconnect() == mqtt.MQTT_ERR_SUCCESS
        results.append((bytes(sock.sent), seen, closed, client._state, client.socket(), client.want_write()))
    assert results[0] == results[1]
    assert results[1][0] == b"\xe0\x00" and results[1][3] == mqtt._ConnectionState.MQTT_CS_DISCONNECTED


def test_version1_callbacks_take_paho_path() -> None:
    """The fast steps call VERSION2 callbacks; a VERSION1 client gets paho's own handlers (its signatures)."""
    seen: list[tuple[Any, ...]] = []
    for client_type in (mqtt.Client, LeanClient):
        client = client_type(CallbackAPIVersion.VERSION1)
        client.on_connect = lambda c, u, flags, rc: seen.append(("connect", flags, rc))
        client.on_subscribe = lambda c, u, mid, granted: seen.append(("suback", mid, granted))
        client._sock = SinkSocket([bytes([0x20, 2, 0, 0, 0x90, 3, 0, 1, 2])])  # type: ignore[assignment]
        client._state = mqtt._ConnectionState.MQTT_CS_CONNECT_ASYNC
        while client._packet_read() != mqtt.MQTT_ERR_AGAIN:
            pass
    assert seen[:2] == seen[2:] == [("connect", {"session present": 0}, 0), ("suback", 1, (2,))]


@pytest.mark.parametrize("logging_on", ["on_log", "enable_logger"])
def test_a_client_that_logs_takes_paho_path(logging_on: str) -> None:
    """The fast steps skip paho's log lines: a client with an on_log callback or a logger gets paho's own
    handlers, which log each ack, and its fast path comes back once logging is off again."""
    client, sock, acked = _connected(LeanClient)
    assert client._lean_fast
    lines: list[str] = []
    if logging_on == "on_log":
        client.on_log = lambda c, u, level, buf: lines.append(buf)
    else:
        client.enable_logger(logging.getLogger("test_lean_reader"))
    assert not client._lean_fast
    first = client.publish("realm/dev/t", b"x", 2)
    sock.chunks = [bytes([0x50, 2, 0, first.mid, 0x70, 2, 0, first.mid])]
    while client._packet_read() != mqtt.MQTT_ERR_AGAIN:
        client.loop_write()
    assert acked == [first.mid] and first.is_published()
    if logging_on == "on_log":
        assert any("PUBREC" in line for line in lines) and any("PUBCOMP" in line for line in lines)
        client.on_log = None
    else:
        client.disable_logger()
    assert client._lean_fast


class _ScriptedReads(LeanClient):
    """`_packet_read` answers from a script (one return code per call); `_loop_rc_handle` is recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script: list[Any] = []
        self.reads = 0
        self.handled: Any = None

    def _packet_read(self) -> Any:
        self.reads += 1
        return self.script.pop(0) if self.script else mqtt.MQTT_ERR_AGAIN

    def _loop_rc_handle(self, rc: Any) -> Any:
        self.handled = rc
        return rc


def _loop_read_outcome(loop_read: Callable[[LeanClient], Any], in_flight: int, script: list[Any],
                       connected: bool = True) -> tuple[Any, int, Any]:
    client = _ScriptedReads(CallbackAPIVersion.VERSION2)
    client.script = list(script)
    if connected:
        client._sock = FakeSocket([])  # type: ignore[assignment]
    for mid in range(1, in_flight + 1):
        client._out_messages[mid] = mqtt.MQTTMessage(mid, b"t")
    return loop_read(client), client.reads, client.handled


@pytest.mark.parametrize(("in_flight", "script", "connected"), [
    (0, [], True),  # nothing read: paho's AGAIN is a success
    (0, [mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_SUCCESS], True),  # at least one packet, never more than in flight
    (1, [mqtt.MQTT_ERR_SUCCESS], True),  # one ack at a time: the campaign's case
    (3, [mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_SUCCESS], True),
    (3, [mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN, mqtt.MQTT_ERR_SUCCESS], True),  # stops at AGAIN
    (2, [mqtt.MQTT_ERR_CONN_LOST], True),  # an error: paho's handling, its code returned
    (2, [mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_PROTOCOL], True),
    (1, [mqtt.MQTT_ERR_SUCCESS], False),  # no socket: NO_CONN, nothing read
])
def test_loop_read_does_what_pahos_does(in_flight: int, script: list[Any], connected: bool) -> None:
    lean = _loop_read_outcome(LeanClient.loop_read, in_flight, script, connected)
    paho = _loop_read_outcome(mqtt.Client.loop_read, in_flight, script, connected)
    assert lean == paho
    assert lean[0] == paho[0] and type(lean[0]) is type(paho[0])  # the same MQTTErrorCode member


def test_loop_read_stops_when_a_handler_closed_the_socket() -> None:
    client = _ScriptedReads(CallbackAPIVersion.VERSION2)
    client._sock = FakeSocket([])  # type: ignore[assignment]
    client._out_messages[1] = mqtt.MQTTMessage(1, b"t")
    client._out_messages[2] = mqtt.MQTTMessage(2, b"t")

    def read_then_close() -> Any:
        client.reads += 1
        client._sock = None  # e.g. a DISCONNECT handled: paho checks the socket before each packet
        return mqtt.MQTT_ERR_SUCCESS

    client._packet_read = read_then_close  # type: ignore[method-assign]
    assert client.loop_read() == mqtt.MQTT_ERR_NO_CONN
    assert client.reads == 1
