"""One packet cut from a read buffer (simulator.transports.mqtt_frames), handed to paho's own handler.

The one-recv readers -- the lean device client (simulator.transports.lean_client) and the embedded backend's
collector (simulator.backend.collector_client) -- take their steady packets off paho's generic path and give it
every other packet exactly as paho's byte-by-byte reader would: the same `_in_packet` fields, then
`_packet_handle`, then the reader's reset state.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.exception import MalformedPacket

__all__ = ["handle_with_paho"]


def handle_with_paho(client: mqtt.Client, buf: bytearray, header: int, length: int) -> Any:
    """paho's `_packet_handle` for the packet at the head of `buf` (`header` bytes of fixed header, `length` of
    body), which leaves the buffer; paho's rc, MQTT_ERR_PROTOCOL for a packet paho finds malformed."""
    client._in_packet = {
        "command": buf[0],
        "have_remaining": 1,
        "remaining_count": list(buf[1:header]),
        "remaining_mult": 128 ** (header - 1),
        "remaining_length": length,
        "packet": buf[header:header + length],
        "to_process": 0,
        "pos": 0,
    }
    del buf[:header + length]
    try:
        rc = client._packet_handle()
    except MalformedPacket as exc:
        client._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
        rc = mqtt.MQTT_ERR_PROTOCOL
    client._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [],
                         "remaining_mult": 1, "remaining_length": 0, "packet": bytearray(), "to_process": 0,
                         "pos": 0}
    return rc
