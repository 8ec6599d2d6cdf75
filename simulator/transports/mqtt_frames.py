"""Cutting MQTT packets out of a byte buffer: the pure part of a reader that takes what the socket has in one
recv instead of paho's three recv calls per packet (command byte, remaining length byte by byte, body).

Shared by the lean device client (simulator.transports.lean_client) and the embedded backend's collector
(simulator.backend.collector_client); no I/O and no paho state here, so both readers keep their own loop.
"""

from __future__ import annotations

__all__ = ["MALFORMED", "READ_SIZE", "complete_packet"]

# Bytes asked of the socket per read: a TLS record carries at most 16 KiB of plaintext (RFC 8446 section 5.1),
# so one SSL_read returns at most that; a burst of acks (4 bytes each) from many in-flight publishes fits.
READ_SIZE = 16384
MALFORMED = (-1, -1)


def complete_packet(buf: bytearray) -> tuple[int, int] | None:
    """(fixed header length, remaining length) of the packet at the start of `buf` when all of it is there;
    MALFORMED for a remaining length over 4 bytes (MQTT 3.1.1 section 2.2.3); None when bytes are missing."""
    size = len(buf)
    if size > 1 and buf[1] < 128:  # a one-byte remaining length: every ack, CONNACK, SUBACK, small PUBLISH
        return (2, buf[1]) if size >= 2 + buf[1] else None
    length, mult, i = 0, 1, 1
    while True:
        if i > 4:
            return MALFORMED
        if i >= size:
            return None
        byte = buf[i]
        length += (byte & 127) * mult
        mult *= 128
        i += 1
        if not byte & 128:
            break
    return (i, length) if size >= i + length else None
