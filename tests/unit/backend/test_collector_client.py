"""CollectorClient's reader against paho's own: the same QoS 2 stream (paho's encoder's bytes) split in any way
-- one byte at a time, all in one read, a packet cut in the middle -- delivers the same messages to on_message
and writes the same acks (PUBREC per PUBLISH, PUBCOMP per PUBREL) in the same order, with one recv per read;
packets the fast steps do not take (QoS 0/1, PINGRESP, a malformed PUBLISH) get paho's own handling."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.backend.collector_client import CollectorClient
from tests.unit.mqtt_fakes import FakeSocket, publish_bytes


def _pubrel(mid: int) -> bytes:
    return bytes((0x62, 2, mid >> 8, mid & 0xFF))


TOPIC = "fleetsim/AAAAAAAAAAAAAAAAAAAAAA/io.edgehog.devicemanager.OTAEvent/event"
STREAM = (publish_bytes(TOPIC, b"\x05" * 300, 2, 1)  # a two-byte remaining length
          + publish_bytes(TOPIC, b"x", 2, 2)
          + _pubrel(1)
          + publish_bytes("fleetsim/dev", b"", 2, 3, retain=True)  # retained, empty payload
          + _pubrel(2) + _pubrel(3)
          + _pubrel(9)  # an unknown mid: PUBCOMP all the same (paho's choice)
          + publish_bytes("fleetsim/q0", b"zero", 0, 0)  # QoS 0 and 1: paho's own path
          + publish_bytes("fleetsim/q1", b"one", 1, 4)
          + b"\xd0\x00")  # PINGRESP


def _client(client_type: type[mqtt.Client], sock: FakeSocket) -> tuple[mqtt.Client, list[tuple[Any, ...]]]:
    client = client_type(CallbackAPIVersion.VERSION2)
    got: list[tuple[Any, ...]] = []
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.qos, m.retain, m.mid))
    client._sock = sock  # type: ignore[assignment]
    client._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    return client, got


def _paho(chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], bytes, FakeSocket]:
    """paho's own reader (each ack written as it is queued: no loop thread)."""
    sock = FakeSocket(chunks)
    client, got = _client(mqtt.Client, sock)
    for _ in range(10_000):
        if client._packet_read() == mqtt.MQTT_ERR_AGAIN:
            break
    return got, b"".join(sock.sent), sock


def _ours(chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], bytes, FakeSocket, CollectorClient]:
    """CollectorClient as paho's `_loop` drives it: a read per readable socket, then the queued acks written."""
    sock = FakeSocket(chunks)
    client, got = _client(CollectorClient, sock)
    assert isinstance(client, CollectorClient)
    written = b""
    while sock.chunks:
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
        assert not sock.sent  # the acks wait for the loop's write turn
        client.loop_write()
        written += b"".join(sock.sent)
        sock.sent.clear()
    return got, written, sock, client


def test_same_messages_and_acks_as_paho_whatever_the_split() -> None:
    expected, expected_acks, paho_sock = _paho([STREAM])
    assert [m[4] for m in expected] == [1, 2, 3, 0, 4]  # QoS 2 at PUBREL, then QoS 0, QoS 1
    assert expected[2] == ("fleetsim/dev", b"", 2, True, 3)
    assert expected_acks == (b"\x50\x02\x00\x01" + b"\x50\x02\x00\x02" + b"\x70\x02\x00\x01"
                             + b"\x50\x02\x00\x03" + b"\x70\x02\x00\x02" + b"\x70\x02\x00\x03"
                             + b"\x70\x02\x00\x09" + b"\x40\x02\x00\x04")
    cut = len(publish_bytes(TOPIC, b"\x05" * 300, 2, 1)) // 2
    for chunks in ([STREAM], [bytes([b]) for b in STREAM], [STREAM[:cut], STREAM[cut:]],
                   [STREAM[:1], STREAM[1:2], STREAM[2:]]):
        got, acks, _sock, client = _ours(chunks)
        assert got == expected
        assert acks == expected_acks
        assert not client._frames and not client._in_messages  # nothing left behind
    sock = _ours([STREAM])[2]
    assert sock.recvs == 1 < paho_sock.recvs  # one read for the burst; paho reads three times per packet


def test_a_split_packet_waits_for_its_rest_and_its_ack_follows_it() -> None:
    publish = publish_bytes(TOPIC, b"payload", 2, 7)
    sock = FakeSocket([publish[:5]])
    client, got = _client(CollectorClient, sock)
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert not client._out_packet and not client._in_messages  # nothing whole yet, nothing acknowledged
    sock.chunks = [publish[5:] + _pubrel(7)[:1]]
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert [p["packet"] for p in client._out_packet] == [b"\x50\x02\x00\x07"] and 7 in client._in_messages
    assert got == []  # QoS 2: on_message at the PUBREL, as paho
    sock.chunks = [_pubrel(7)[1:]]
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert got == [(TOPIC, b"payload", 2, False, 7)]
    assert [p["packet"] for p in client._out_packet] == [b"\x50\x02\x00\x07", b"\x70\x02\x00\x07"]
    assert client._in_packet["command"] == 0  # paho's reader state untouched by the fast steps


def test_a_malformed_publish_is_pahos_protocol_error() -> None:
    # QoS 2 PUBLISH whose topic length (0x00ff) runs past the packet: paho's decoder fails, the connection ends.
    sock = FakeSocket([b"\x34\x04\x00\xff\x00\x01"])
    client, got = _client(CollectorClient, sock)
    closed: list[Any] = []
    client.on_disconnect = lambda *a: closed.append(a)
    assert client.loop_read() == mqtt.MQTT_ERR_PROTOCOL
    assert got == [] and closed and client._sock is None


def test_connection_end_and_would_block() -> None:
    client, _got = _client(CollectorClient, FakeSocket([]))
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS  # nothing to read yet: not an error
    client._sock = FakeSocket([b""])  # type: ignore[assignment]
    assert client.loop_read() == mqtt.MQTT_ERR_CONN_LOST and client._sock is None
    assert client.loop_read() == mqtt.MQTT_ERR_NO_CONN


def test_another_threads_packet_wakes_the_loop() -> None:
    """Only the reading thread's acks skip paho's wake-up: a publish from another thread still sends the byte
    that breaks paho's select, or it would wait for the next packet from the broker."""
    client, _got = _client(CollectorClient, FakeSocket([]))
    assert isinstance(client, CollectorClient)
    wakes: list[bytes] = []

    class Pair:
        def send(self, data: bytes) -> int:
            wakes.append(data)
            return len(data)

    client._sockpairW = Pair()  # type: ignore[assignment]
    client._thread = threading.current_thread()  # paho's threaded mode: queue, do not write inline
    client._reader = threading.get_ident()
    client._packet_queue(0x50, b"\x50\x02\x00\x01", 1, 1)
    assert wakes == []
    worker = threading.Thread(target=client._packet_queue, args=(0x62, b"\x62\x02\x00\x02", 2, 1))
    worker.start()
    worker.join()
    assert len(wakes) == 1 and len(client._out_packet) == 2
    client._reader = None
    client._thread = None
    client._sockpairW = None
