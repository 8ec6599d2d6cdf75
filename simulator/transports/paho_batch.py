"""A paho Client whose queued packets leave in ONE write: one TLS record and one send(2) for many packets.

Why, for a device (simulator.transports.lean_client): the Astarte handshake queues ~22 packets at once and paho
writes each with its own SSL_write + send(2): ~20 syscalls per reconnect of a reboot-every-operation campaign.

Why, for the embedded backend's collector (simulator.backend.collector): it answers every QoS 2 OTAEvent with
a PUBREC and a PUBCOMP; written one by one, each is its own TLS record, and mosquitto 2.0 reads one MQTT packet
per client per pass of its event loop unless OpenSSL still holds decrypted bytes of the record (loop.c:
`do { packet__read(context); } while(SSL_DATA_PENDING(context))`). At 2,600 events/s from 1,000 devices the
collector's acks queued up in mosquitto's receive buffer (1.7 MB unread, 3.4 MB more in the collector's send
queue, `ss -tn`) and delivery to the collector fell to ~400 events/s while mosquitto's queue for it grew
(bench/soak_memory.py, 2026-12-07). Gathered into one record, a pass reads them all.

The bytes on the TCP stream are the same, in the same order. Packets whose completion paho acts on (a QoS 0
PUBLISH: on_publish; DISCONNECT: close) go through paho's own per-packet loop, as before. Another thread may
queue packets meanwhile (paho's `_packet_queue` appends without a lock): the gathering then stops and paho's
own loop writes.
"""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["BatchedWriteClient"]

_PUBLISH = 0x30
_DISCONNECT = 0xE0


class BatchedWriteClient(mqtt.Client):
    """paho `Client` with `_packet_write` gathering the queue into one write (see the module docstring)."""

    # Bytes of the last gathered write that raised WantWrite: OpenSSL wants the retry to be the same length
    # (SSL_write without partial writes), so the retry gathers exactly those packets again. 0: none.
    _batch_retry_len = 0

    def _write_unbatched(self) -> Any:
        """The head of the queue is not for gathering (DISCONNECT, QoS 0 PUBLISH, a lone retry): paho's loop."""
        return super()._packet_write()

    def _packet_write(self) -> Any:
        out = self._out_packet
        if not out:
            return mqtt.MQTT_ERR_SUCCESS
        if len(out) == 1 and not self._batch_retry_len:
            return self._write_lone(out)
        batch: list[Any] = []
        size = 0
        try:
            for packet in out:
                kind = packet["command"] & 0xF0
                if kind == _DISCONNECT or (kind == _PUBLISH and packet["qos"] == 0):
                    break
                if self._batch_retry_len and size >= self._batch_retry_len:
                    break
                batch.append(packet)
                size += packet["to_process"]
        except RuntimeError:  # another thread queued a packet while we gathered: paho's loop writes
            self._batch_retry_len = 0
            return super()._packet_write()
        if not batch or (self._batch_retry_len and size != self._batch_retry_len):
            self._batch_retry_len = 0
            return self._write_unbatched()
        # join takes the bytearrays as they are (no copy each); a packet started by an earlier partial write
        # contributes its rest through a memoryview. A lone whole packet (a device's PUBLISH or PUBREL: two
        # writes per OTAEvent) is written as it is, without the generator and the join's copy.
        first = batch[0]
        if len(batch) == 1 and not first["pos"]:
            data = first["packet"]
        else:
            data = b"".join(p["packet"] if not p["pos"] else memoryview(p["packet"])[p["pos"]:] for p in batch)
        try:
            sent = self._sock_send(data)
        except (AttributeError, ValueError):
            return mqtt.MQTT_ERR_SUCCESS  # no socket: the packets stay queued, as paho does
        except BlockingIOError:
            self._batch_retry_len = size
            return mqtt.MQTT_ERR_AGAIN
        except OSError:
            return mqtt.MQTT_ERR_CONN_LOST
        self._batch_retry_len = 0
        for packet in batch:
            take = min(sent, packet["to_process"])
            packet["pos"] += take
            packet["to_process"] -= take
            sent -= take
            if packet["to_process"]:
                break
            out.popleft()  # written whole: paho does nothing else for a QoS 1/2 PUBLISH, PUBREL, PUBREC...
        self._last_msg_out = time.monotonic()  # paho's time_func, for keepalive
        return super()._packet_write() if out else mqtt.MQTT_ERR_SUCCESS

    def _write_lone(self, out: Any) -> Any:
        """`_packet_write` of a queue holding one packet and no retry owed: a device's PUBLISH or PUBREL, two
        per OTAEvent. The same steps for that case -- written as it is (or its rest after a partial write),
        popped when whole -- without gathering a batch of one."""
        packet = out[0]
        kind = packet["command"] & 0xF0
        if kind == _DISCONNECT or (kind == _PUBLISH and packet["qos"] == 0):
            return self._write_unbatched()
        pos = packet["pos"]
        todo = packet["to_process"]
        try:
            sent = self._sock_send(bytes(memoryview(packet["packet"])[pos:]) if pos else packet["packet"])
        except (AttributeError, ValueError):
            return mqtt.MQTT_ERR_SUCCESS  # no socket: the packet stays queued, as paho does
        except BlockingIOError:
            self._batch_retry_len = todo
            return mqtt.MQTT_ERR_AGAIN
        except OSError:
            return mqtt.MQTT_ERR_CONN_LOST
        if sent < todo:  # the rest: paho's own loop, as after a partial gathered write
            packet["pos"] = pos + sent
            packet["to_process"] = todo - sent
            self._last_msg_out = time.monotonic()
            return super()._packet_write()
        packet["pos"] = pos + todo
        packet["to_process"] = 0
        out.popleft()
        self._last_msg_out = time.monotonic()  # paho's time_func, for keepalive
        return mqtt.MQTT_ERR_SUCCESS
