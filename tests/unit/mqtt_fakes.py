"""What the one-recv readers' tests share (tests/unit/transports/test_lean_reader.py,
tests/unit/backend/test_collector_client.py): a socket that hands out queued chunks, and a PUBLISH as paho's
own encoder writes it."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class FakeSocket:
    """recv returns the queued chunks in order (at most bufsize bytes each), then 'no data yet'; send keeps
    what is written."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.recvs = 0
        self.sent: list[bytes] = []

    def recv(self, bufsize: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        self.recvs += 1
        chunk = self.chunks.pop(0)
        if len(chunk) > bufsize:
            self.chunks.insert(0, chunk[bufsize:])
        return chunk[:bufsize]

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def close(self) -> None:  # paho closes its socket when the client is collected
        self.chunks = []


def publish_bytes(topic: str, payload: bytes, qos: int = 0, mid: int = 0, retain: bool = False) -> bytes:
    """A PUBLISH as paho's encoder writes it (paho's own `_send_publish` into its queue)."""
    sender = mqtt.Client(CallbackAPIVersion.VERSION2)
    sender._sock = FakeSocket([])  # type: ignore[assignment]
    sender._sock_send = lambda data: (_ for _ in ()).throw(BlockingIOError())  # type: ignore[method-assign]
    sender._state = mqtt._ConnectionState.MQTT_CS_CONNECTED
    sender._last_mid = mid - 1
    sender.publish(topic, payload, qos, retain=retain)
    return bytes(sender._out_packet[0]["packet"])
