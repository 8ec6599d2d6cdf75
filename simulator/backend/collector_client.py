"""CollectorClient: the paho Client of the embedded backend's collector, reading what the socket has in one recv
and taking the QoS 2 receive flow (PUBLISH in, PUBREC out, PUBREL in, PUBCOMP out) off paho's generic path.

Why: per QoS 2 OTAEvent the collector's paho network thread read two packets with three SSL_read calls each
(command byte, remaining length byte by byte, body), built a ReasonCode and a Properties per PUBREL (paho 2.2
`_decode_mid_reason_prop`, even for MQTT 3.1.1), walked the on_message filters, and woke its own select loop
through its socket pair once per queued ack (a send(2) and a recv(2) per PUBREC and per PUBCOMP). The handler
(validation + record) was ~107 us of the ~500 us of collector CPU per OTAEvent (bench/results/collector_cost.json,
issue 14's machine); under cProfile (bench/collector_cost.py --profile-dir, this tree's base 4284c78) paho's
`_packet_read` was 80% of the network thread's time, the collector's `handle_message` under 40% of that.

What stays paho's: the socket, TLS, connect/reconnect, keep-alive, every other packet (handed to paho's own
`_packet_handle` with the `_in_packet` fields paho's reader would have built), `_in_messages` (so a reconnect
resets it as paho does), the in-flight accounting and the callbacks' locks and signatures. The bytes written are
paho's (the same PUBREC and PUBCOMP, in the same order), and paho's loop writes them on its next turn as it did
(`loop_read` below says why not at once). The collector still stamps the arrival time first thing in
on_message, called at the PUBREL as paho calls it.

Measured: collector CPU per OTAEvent 218.0 us vs 303.4 us (ratio 0.719; rounds 222.1, 187.7, 198.9, 218.0, 224.4
vs 156.1, 221.7, 329.5, 303.4, 318.2; mosquitto 100.0 vs 110.7 us), `python bench/collector_cost.py --events
15000 --rate 1500 --rounds 5 --modes debug-pipe --baseline-root <4284c78's simulator/>`, medians n = 5 each side,
one invocation, a 2-core VM shared with other jobs (load ~4: a starved round costs less, as the base's 156.1
shows). That run also had a faster BSON decoder since reverted (~4 us of the ~218 per event).

Not gevent: the backend process is a plain threaded program (paho's `loop_start` thread).
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from simulator.transports.mqtt_frames import MALFORMED, READ_SIZE, complete_packet
from simulator.transports.paho_batch import BatchedWriteClient
from simulator.transports.paho_handoff import handle_with_paho

__all__ = ["CollectorClient"]

_PUBREC, _PUBREL, _PUBCOMP = 0x50, 0x62, 0x70  # fixed header byte 1 (PUBREL: flags 0010, MQTT 3.1.1 3.6.1)
_PUBLISH_QOS2 = 0x34  # PUBLISH with QoS 2 once the DUP (0x08) and RETAIN (0x01) flags are masked off (0xF6)
_MID_PACKET = struct.Struct("!BBH")  # an ack: type+flags, remaining length 2, packet identifier
_SUCCESS, _NO_CONN = mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN
_CONN_LOST, _PROTOCOL = mqtt.MQTT_ERR_CONN_LOST, mqtt.MQTT_ERR_PROTOCOL


class CollectorClient(BatchedWriteClient):
    """See the module docstring. Threaded (`loop_start`) as paho: another thread may publish meanwhile."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frames = bytearray()  # bytes read and not yet handled
        # The thread handling a read's packets: its acks only queue (written once after them); another thread's
        # publish still wakes the loop through paho's socket pair.
        self._reader: int | None = None
        self._filters = False  # message_callback_add was used: paho's own dispatch (`_handle_on_message`)

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filters = True
        super().message_callback_add(sub, callback)

    @property
    def _fast(self) -> bool:
        """The QoS 2 steps below apply: MQTT 3.1.1 (no properties, no reason codes), paho's automatic acks, no
        paho logging (the fast steps do not write paho's debug lines), no per-topic callbacks."""
        return (self._protocol != mqtt.MQTTv5 and self._on_log is None and self._logger is None
                and not self._manual_ack and not self._filters)

    # ---- reading: one recv per wake-up, every complete packet handled, the acks written once ----

    def loop_read(self, max_packets: int = 1) -> Any:
        """paho `loop_read` (called by paho's `_loop` when the socket is readable or OpenSSL holds decrypted
        bytes): ONE recv of up to READ_SIZE bytes, then every complete packet in the buffer, in order; a
        partial packet waits for the next read (select wakes for its rest). `max_packets` is paho's bound on
        packets per call; here the buffer bounds it."""
        if self._sock is None:
            return _NO_CONN
        try:
            data = self._sock_recv(READ_SIZE)
        except BlockingIOError:  # SSL_read without a whole record yet (paho's WantRead): nothing to do
            return _SUCCESS
        except OSError as err:  # TimeoutError and ConnectionError included, as paho's reader
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(_CONN_LOST)
        if not data:
            return self._loop_rc_handle(_CONN_LOST)
        self._frames += data
        self._last_bytes_received = time.monotonic()  # paho's time_func, for keepalive
        self._reader = threading.get_ident()
        try:
            rc = self._handle_frames()
        finally:
            self._reader = None
        if rc > 0:
            return self._loop_rc_handle(rc)
        # The acks are written by paho's `_loop` on its next turn, as paho's own reader left them: the queue
        # makes it select for writing too, which returns at once, and a packet that arrived meanwhile is read
        # (its ack queued) before the write, so a busy collector gathers more acks per TLS record. Writing here
        # (one record per read) measured worse: collector 284 vs 269 us, mosquitto 133 vs 107 us per OTAEvent
        # (bench/collector_cost.py --events 15000 --rate 1500 --rounds 4 --baseline-root <that variant>,
        # medians n = 4 each side, on a loaded 2-core VM: the direction, not the size).
        return _SUCCESS

    def _handle_frames(self) -> Any:
        """Every complete packet at the head of the buffer, in order, until one fails (paho's rc)."""
        buf = self._frames
        while True:
            cut = complete_packet(buf)
            if cut is None:
                return _SUCCESS
            if cut is MALFORMED:
                return _PROTOCOL  # a remaining length over 4 bytes: paho's answer
            header, length = cut
            command = buf[0]
            if command & 0xF6 == _PUBLISH_QOS2 and self._fast:
                rc = self._publish_qos2(buf, header, length)
            elif command == _PUBREL and length == 2 and header == 2 and self._fast:
                mid = (buf[2] << 8) | buf[3]
                del buf[:4]
                rc = self._pubrel(mid)
            else:
                rc = handle_with_paho(self, buf, header, length)
            if rc:
                return rc

    def _publish_qos2(self, buf: bytearray, header: int, length: int) -> Any:
        """paho `_handle_publish` for a QoS 2 PUBLISH (MQTT 3.1.1): the message waits in `_in_messages` for its
        PUBREL; PUBREC queued. A body too short for its topic length, or an empty topic, is paho's own
        MalformedPacket (`handle_with_paho`)."""
        topic_len = (buf[header] << 8) | buf[header + 1] if length >= 2 else 0
        if not topic_len or length < 4 + topic_len:
            return handle_with_paho(self, buf, header, length)
        command = buf[0]
        start = header + 2 + topic_len
        mid = (buf[start] << 8) | buf[start + 1]
        message = mqtt.MQTTMessage(mid, bytes(buf[header + 2:start]))
        message.dup = bool(command & 0x08)
        message.qos = 2
        message.retain = bool(command & 0x01)
        message.properties = None
        message.payload = bytes(buf[start + 2:header + length])
        del buf[:header + length]
        message.timestamp = time.monotonic()  # paho's time_func
        rc = self._packet_queue(_PUBREC, _MID_PACKET.pack(_PUBREC, 2, mid), mid, 1)
        message.state = mqtt.mqtt_ms_wait_for_pubrel
        with self._in_message_mutex:
            self._in_messages[mid] = message
        return rc

    def _pubrel(self, mid: int) -> Any:
        """paho `_handle_pubrel` + `_handle_on_message` without filters: the message (if known) goes to
        on_message, under paho's locks, then PUBCOMP (also for an unknown mid: paho's choice, its issue #284)."""
        with self._in_message_mutex:
            message = self._in_messages.pop(mid, None)
            if message is not None:
                with self._callback_mutex:
                    on_message: Any = self._on_message
                if on_message is not None:
                    with self._in_callback_mutex:
                        try:
                            on_message(self, self._userdata, message)
                        except Exception as err:
                            self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                            if not self.suppress_exceptions:
                                raise
                if self._max_inflight_messages > 0:
                    with self._out_message_mutex:
                        rc = self._update_inflight()
                    if rc != _SUCCESS:
                        return rc
        return self._packet_queue(_PUBCOMP, _MID_PACKET.pack(_PUBCOMP, 2, mid), mid, 1)

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: Any = None) -> Any:
        """paho `_packet_queue`; while this thread handles a read's packets, the packet only queues (loop_read
        writes them all after the read), instead of a send(2) to paho's socket pair and a select wake-up each."""
        if self._reader is not None and self._reader == threading.get_ident():
            self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                     "to_process": len(packet), "packet": packet, "info": info})
            return _SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)

    def _sock_close(self) -> None:
        self._frames = bytearray()  # bytes of a closed connection never reach the next one
        super()._sock_close()
