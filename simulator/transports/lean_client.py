"""LeanClient: the paho Client of one lean device -- its TCP and TLS sockets, its buffered reads and gathered
writes, and the fast steps that take the packets of a device's steady traffic (PUBREC, PUBACK, PUBCOMP, CONNACK,
SUBACK, DISCONNECT) off paho's generic path. The bytes on the wire are paho's.

simulator.transports.lean_fleet holds what the clients of one process share (LeanFleet); see
simulator.transports.lean for the wire behaviour and simulator.transports.lean_loop for the I/O model.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, _ConnectionState
from paho.mqtt.packettypes import PacketTypes

from simulator.transports import native_tls
from simulator.transports.mqtt_frames import MALFORMED, READ_SIZE, complete_packet
from simulator.transports.paho_batch import BatchedWriteClient
from simulator.transports.paho_handoff import handle_with_paho
from simulator.transports.paho_tuning import (
    shared_ack_fields,
    shared_properties,
    shared_reason_code,
)
from simulator.transports.ports import open_connection
from simulator.transports.tls_contexts import DeviceContexts

__all__ = ["LeanClient"]

_PUBLISH, _DISCONNECT = 0x30, 0xE0  # MQTT control packet types (high nibble of the fixed header)

# Reading: one recv per wake-up, packets cut from the buffer (simulator.transports.mqtt_frames, shared with the
# embedded backend's collector's reader).
_PUBREC, _PUBREL = 0x50, 0x62  # fixed header byte 1 (PUBREL: flags 0010, MQTT 3.1.1 section 3.6.1)
_CONNACK, _SUBACK = 0x20, 0x90  # fixed header byte 1 (MQTT 3.1.1 sections 3.2.1, 3.9.1)
# PUBACK and PUBCOMP: their paho.mqtt.packettypes.PacketTypes value (the callback's ReasonCode/Properties).
_FAST_ACKS = {0x50: 0, 0x40: 4, 0x70: 7}
_MQTTV5, _VERSION2 = mqtt.MQTTv5, CallbackAPIVersion.VERSION2
_SUCCESS, _AGAIN, _NO_CONN = mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN, mqtt.MQTT_ERR_NO_CONN
_MID_PACKET = struct.Struct("!BBH")  # a PUBREL: type+flags, remaining length 2, packet identifier
_U16 = struct.Struct("!H")


def _publish_packet(topic_field: bytes, payload: bytes, qos: int, mid: int) -> bytearray:
    """paho `_send_publish` for MQTT 3.1.1, QoS 1/2, dup and retain off: fixed header, remaining length
    (MQTT 3.1.1 section 2.2.3), the topic field (its length and UTF-8 bytes: LeanClient._lean_topic), packet
    identifier, payload."""
    packet = bytearray((_PUBLISH | (qos << 1),))
    remaining = len(topic_field) + 2 + len(payload)
    while True:
        byte, remaining = remaining % 128, remaining // 128
        if remaining:
            packet.append(byte | 0x80)
        else:
            packet.append(byte)
            break
    packet += topic_field
    packet += _U16.pack(mid)
    packet += payload
    return packet


_new_message = mqtt.MQTTMessage.__new__  # an MQTTMessage whose slots LeanClient.publish sets, each once


class LeanClient(BatchedWriteClient):
    """paho Client whose TCP socket comes from ports.open_connection (source address, TCP_NODELAY), whose
    TLS socket is CPython's own, handshaken cooperatively (native_tls: why), and whose queued packets leave
    in one write (`_packet_write`)."""

    lean_source = ""
    lean_cert: tuple[str, str] = ("", "")  # the device's certificate and key files
    lean_contexts: DeviceContexts | None = None  # per-device contexts of reconnecting devices (tls_contexts)
    # Inside a step of the transport (LeanTransport._drive): packets are queued, written after the step.
    lean_defer = False
    # The last topic published, its UTF-8 bytes and its PUBLISH field (length + bytes), checked as paho checks
    # it (`publish`): every OTAEvent of an operation goes to the same topic, so it is encoded and checked once
    # per run of them, not once per event. One topic, not a map of them: a device publishes on ~20 (its
    # properties, the handshake's), and 18 kept would add ~7.5 KB to its ~45 KB of RSS (README,
    # devices_per_process), one ~0.4 KB (sys.getsizeof of the strings, bytes, tuples and dict, a 70-character
    # topic).
    _lean_topic: tuple[str, bytes, bytes] = ("", b"", b"")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean_in = bytearray()  # bytes read and not yet handled (_packet_read)

    def _write_unbatched(self) -> Any:
        """A DISCONNECT at the head of the queue (every simulated reboot) on the fast step; the rest as paho."""
        out = self._out_packet
        if out and out[0]["command"] & 0xF0 == _DISCONNECT and self._lean_fast:
            return self._lean_write_disconnect()
        return super()._write_unbatched()

    def _lean_write_disconnect(self) -> Any:
        """paho `_packet_write` for a DISCONNECT at the head of the queue (every simulated reboot): written,
        on_disconnect(not from the server, Success, no properties), socket closed, DISCONNECTED if asked for.
        paho built a ReasonCode by its name (a walk over every reason code's names) and a Properties per
        DISCONNECT and took two (gevent-patched) locks. A partial or failed write is paho's own path."""
        out = self._out_packet
        packet = out[0]
        try:
            sent = self._sock_send(packet["packet"][packet["pos"]:])
        except (AttributeError, ValueError, OSError):  # BlockingIOError included: paho says which
            return super()._packet_write()
        packet["to_process"] -= sent
        packet["pos"] += sent
        if packet["to_process"] > 0:
            return super()._packet_write()  # the rest, as paho writes it
        out.popleft()
        self._last_msg_out = time.monotonic()  # paho's time_func
        on_disconnect: Any = self._on_disconnect
        if on_disconnect is not None:
            args = (self, self._userdata, mqtt.DisconnectFlags(is_disconnect_packet_from_server=False),
                    shared_reason_code(PacketTypes.DISCONNECT, 0), shared_properties(PacketTypes.DISCONNECT))
            try:
                with self._in_callback_mutex:
                    on_disconnect(*args)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_disconnect: %s", err)
                if not self.suppress_exceptions:
                    raise
        self._sock_close()
        if self._state == _ConnectionState.MQTT_CS_DISCONNECTING:
            self._state = _ConnectionState.MQTT_CS_DISCONNECTED
        return mqtt.MQTT_ERR_SUCCESS

    def loop_write(self) -> Any:
        """paho `loop_write`; its register/unregister-write bookkeeping only when such a callback is set.
        LeanFleet sets none (the transport arms its own write watcher: LeanTransport._sync_write), and the
        bookkeeping took paho's callback lock on every write: ~2 per OTAEvent."""
        if self._on_socket_register_write is not None or self._on_socket_unregister_write is not None:
            return super().loop_write()
        if self._sock is None:
            return mqtt.MQTT_ERR_NO_CONN
        rc = self._packet_write()
        if rc == mqtt.MQTT_ERR_AGAIN:
            return mqtt.MQTT_ERR_SUCCESS
        if rc > 0:
            return self._loop_rc_handle(rc)
        return mqtt.MQTT_ERR_SUCCESS

    def lean_misc_idle(self, now: float) -> bool:
        """paho `loop_misc` at `now` (paho's time_func, monotonic s) would do nothing: no socket, or no PINGREQ
        owed (bytes out and in within the keep-alive), no CONNACK overdue (a reconnect's: not connected and
        the keep-alive passed) and no PINGRESP overdue. The same fields and comparisons as paho 2.2's
        `loop_misc` + `_check_keepalive`, which act only when one of them fails. Why: the I/O loop visits every
        connection every 2 s (lean_loop.IoLoop._run_misc) to keep paho's 60 s keep-alive, and a paho
        `loop_misc` that had nothing to do was ~70 % of an idle connected fleet's CPU (bench/idle_fleet_cost.py
        --profile, 1,000 devices: ~8 ms of CPU per second)."""
        if self._sock is None:
            return True
        keepalive = self._keepalive
        ping_t = self._ping_t
        if ping_t > 0 and now - ping_t >= keepalive:
            return False
        return keepalive == 0 or (now - self._last_msg_out < keepalive
                                  and now - self._last_bytes_received < keepalive)

    # ---- reading: one recv per burst instead of three per packet ----

    def loop_read(self, max_packets: int = 1) -> Any:
        """paho `loop_read`: up to as many packets as messages in flight (at least one), stopping at the first
        error (handled as paho handles it) or when the socket has nothing more. The same steps without its
        per-call Enum member lookups and `max()`: one call per ready socket, ~2 per OTAEvent at one ack per
        wake-up; 685 -> 313 ns per call (bench/read_step_cost.py --rounds 7, n = 7)."""
        if self._sock is None:
            return _NO_CONN
        count = len(self._out_messages) + len(self._in_messages)
        for _ in range(count if count > 1 else 1):
            if self._sock is None:
                return _NO_CONN
            rc = self._packet_read()
            if rc:
                if rc > 0:
                    return self._loop_rc_handle(rc)
                if rc == _AGAIN:
                    return _SUCCESS
        return _SUCCESS

    def _packet_read(self) -> Any:
        """paho's `_packet_read`, reading what the socket has in ONE recv and cutting packets from it.

        paho reads each packet with three recv calls (its command byte, its remaining length byte by byte, its
        body) -- through TLS, three SSL_read calls for a 4-byte PUBREC -- and takes a (gevent-patched) lock
        twice to note the time: 10% of the engine's CPU sat in TlsSocket.recv (bench/profile_hot_path.py
        --system engine, 1,000 devices). Here a recv of up to READ_SIZE bytes fills `_lean_in`; each
        complete packet is handed to paho's own `_packet_handle` exactly as paho's reader would hand it (the
        same `_in_packet` fields), one packet per call, as paho does. Bytes of a later packet stay buffered:
        the transport serves the connection again while `lean_buffered()` (epoll cannot see them)."""
        buf = self._lean_in
        packet = complete_packet(buf) if buf else None  # empty after most reads: no call to say so
        while packet is None:
            try:
                data = self._sock_recv(READ_SIZE)
            except BlockingIOError:
                return mqtt.MQTT_ERR_AGAIN
            except OSError as err:  # TimeoutError included, as paho
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return mqtt.MQTT_ERR_CONN_LOST
            if not data:
                return mqtt.MQTT_ERR_CONN_LOST
            buf += data
            self._last_bytes_received = time.monotonic()  # paho's time_func, for keepalive
            packet = complete_packet(buf)
        if packet is MALFORMED:
            return mqtt.MQTT_ERR_PROTOCOL  # a remaining length over 4 bytes: paho's answer
        header, length = packet
        command = buf[0]
        if command in _FAST_ACKS and header == 2 and length == 2 and self._lean_fast:
            mid = (buf[2] << 8) | buf[3]
            del buf[:4]
            return self._lean_pubrec(mid) if command == _PUBREC else self._lean_ack(mid, _FAST_ACKS[command])
        if command == _SUBACK and header == 2 and length >= 3 and self._lean_fast:
            mid = (buf[2] << 8) | buf[3]
            granted = bytes(buf[4:2 + length])
            del buf[:2 + length]
            return self._lean_suback(mid, granted)
        if (command == _CONNACK and header == 2 and length == 2 and buf[3] == 0 and self._lean_fast
                and self._protocol == mqtt.MQTTv311 and not self._out_messages):
            flags = buf[2]
            del buf[:4]
            return self._lean_connack(flags)
        return handle_with_paho(self, buf, header, length)

    # ---- the QoS 1/2 publish flow, paho's own steps without its generic layers ----
    # Why: per QoS 2 OTAEvent paho decodes two acks through its generic decoder, takes its message lock (a
    # gevent-patched RLock) twice and its callback lock once, and builds an `_in_packet` dict per packet:
    # ~20% of the engine's CPU was paho's read path (bench/profile_hot_path.py --system engine). These do
    # exactly what paho's handlers do with paho's own state (`_out_messages`, `_inflight_messages`,
    # `_update_inflight`, `_packet_queue`), so reconnects, retransmission and in-flight limits stay paho's.
    # Only for MQTT 3.1.1, VERSION2 callbacks, no paho logging (`_lean_fast`); anything else takes paho's own path. The
    # locks skipped guard against other threads: one hub thread drives every LeanClient, and these
    # sections never switch greenlets.

    @property
    def _lean_fast(self) -> bool:
        # VERSION2: the fast steps call the callbacks with paho's VERSION2 signatures (LeanFleet's clients).
        # Read per packet (~3 times per OTAEvent): the fields themselves (`_on_log`, not paho's `on_log`
        # property) and module constants (not an Enum class's member lookup): 0.22-0.35 -> ~0.11 us per read.
        return (self._protocol != _MQTTV5 and self._on_log is None and self._logger is None
                and self._callback_api_version is _VERSION2)

    def _lean_pubrec(self, mid: int) -> Any:
        """paho `_handle_pubrec`: the message now waits for PUBCOMP; PUBREL queued (written after the step)."""
        msg = self._out_messages.get(mid)
        if msg is None:
            return mqtt.MQTT_ERR_SUCCESS
        msg.state = mqtt.mqtt_ms_wait_for_pubcomp
        msg.timestamp = time.monotonic()  # paho's time_func
        return self._packet_queue(_PUBREL, _MID_PACKET.pack(_PUBREL, 2, mid), mid, 1)

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: Any = None) -> Any:
        """paho `_packet_queue`: the packet joins the queue and, outside a step of the transport and outside a
        callback, is written at once (paho's rule). Inside a step (`lean_defer`: LeanTransport._drive) it only
        queues: the transport writes what the step queued in one go after it (`_packet_write`). paho marks
        that by a register-write callback, which cost two (gevent-patched) lock round trips per PUBREL."""
        if self._sockpairW is not None:  # paho's threaded mode: never ours, but then paho's own rules
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": info})
        if self.lean_defer:
            return mqtt.MQTT_ERR_SUCCESS
        if self._thread is None and self._on_socket_register_write is None and not self._in_callback_mutex.locked():
            return self.loop_write()  # one thread: "not locked" is paho's acquire(False) + release
        self._call_socket_register_write()
        return mqtt.MQTT_ERR_SUCCESS

    def _lean_connack(self, flags: int) -> Any:
        """paho `_handle_connack` for an accepted MQTT 3.1.1 CONNACK with no message of a former session to
        resend (`_out_messages` empty: a first connect, or a reconnect after `drop_out_messages`, as every
        simulated reboot): connected, then on_connect(flags, Success, no properties). What paho does besides --
        the downgrade to 3.1 and the new client id (refusals only), the resend loop over `_out_messages` -- has
        nothing to act on here; a refused or MQTT 5 CONNACK, or one with messages to resend, is paho's own.
        Saved: paho's decoder (a ReasonCode), a Properties per CONNACK, two (gevent-patched) lock round trips."""
        self._state = _ConnectionState.MQTT_CS_CONNECTED
        self._reconnect_delay = None
        self._mqttv5_first_connect = False
        on_connect: Any = self._on_connect
        if on_connect is not None:
            args = (self, self._userdata, mqtt.ConnectFlags(session_present=bool(flags & 0x01)),
                    shared_reason_code(PacketTypes.CONNACK, 0), shared_properties(PacketTypes.CONNACK))
            try:
                if self.lean_defer:  # in a transport step: what the callback publishes is queued anyway
                    on_connect(*args)
                else:
                    with self._in_callback_mutex:  # paho's marker "inside a callback": publish() only queues
                        on_connect(*args)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_connect: %s", err)
                if not self.suppress_exceptions:
                    raise
        # paho then walks `_out_messages`, which now holds only what on_connect published (the handshake):
        # each gets a fresh timestamp, and a message queued behind the in-flight limit makes it write the queue.
        now = time.monotonic()  # paho's time_func
        queued = False
        for message in self._out_messages.values():
            message.timestamp = now
            queued = queued or message.state == mqtt.mqtt_ms_queued
        if queued and not self.lean_defer:
            self.loop_write()  # inside a step the transport writes the queue after it (_sync_write)
        return mqtt.MQTT_ERR_SUCCESS

    def _lean_suback(self, mid: int, granted: bytes) -> Any:
        """paho `_handle_suback` for MQTT 3.1.1: on_subscribe(mid, a ReasonCode per granted QoS, no
        properties). One per subscription of the Astarte handshake (the SDK subscribes one topic per SUBSCRIBE):
        paho's decoder built a ReasonCode per topic and a Properties per SUBACK and took two locks."""
        on_subscribe: Any = self._on_subscribe
        if on_subscribe is None:
            return mqtt.MQTT_ERR_SUCCESS
        try:
            codes = [shared_reason_code(PacketTypes.SUBACK, code) for code in granted]
        except KeyError as exc:  # a granted QoS MQTT does not define: paho's decoder fails the same way
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            return mqtt.MQTT_ERR_PROTOCOL
        try:
            if self.lean_defer:  # in a transport step: what the callback publishes is queued anyway
                on_subscribe(self, self._userdata, mid, codes, shared_properties(PacketTypes.SUBACK))
            else:
                with self._in_callback_mutex:
                    on_subscribe(self, self._userdata, mid, codes, shared_properties(PacketTypes.SUBACK))
        except Exception as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_subscribe: %s", err)
            if not self.suppress_exceptions:
                raise
        return mqtt.MQTT_ERR_SUCCESS

    def _lean_ack(self, mid: int, packet_type: int) -> Any:
        """paho `_handle_pubackcomp` + `_do_on_publish`: a PUBCOMP (QoS 2) or a PUBACK (QoS 1) completes."""
        if mid not in self._out_messages:
            return mqtt.MQTT_ERR_SUCCESS
        on_publish: Any = self._on_publish
        if on_publish is not None:
            reason, props = shared_ack_fields(packet_type)
            try:
                if self.lean_defer:  # in a transport step: what the callback publishes is queued anyway
                    on_publish(self, self._userdata, mid, reason, props)
                else:
                    with self._in_callback_mutex:  # paho's marker "inside a callback": publish() only queues
                        on_publish(self, self._userdata, mid, reason, props)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_publish: %s", err)
                if not self.suppress_exceptions:
                    raise
        msg = self._out_messages.pop(mid)
        msg.info._set_as_published()
        if msg.qos > 0:
            self._inflight_messages -= 1
            # paho's `_update_inflight` walks every message to send the queued ones; a queued message is in
            # `_out_messages` but not counted in flight, so with no more messages than in flight there is none
            # (a reboot campaign has one message in flight per device: the walk was 1.8% of its CPU).
            if self._max_inflight_messages > 0 and len(self._out_messages) > self._inflight_messages:
                rc: Any = self._update_inflight()
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    return rc
        return mqtt.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                properties: Any = None) -> Any:
        """paho `publish` for a QoS 1/2 bytes payload on a connected MQTT 3.1.1 client (the OTAEvents, the
        handshake's messages): the same checks, the same MQTTMessage in `_out_messages`, the same bytes
        queued by `_packet_queue`; anything else is paho's own `publish`."""
        if (qos not in (1, 2) or retain or properties is not None or type(payload) is not bytes
                or self._sock is None or not self._lean_fast or not topic):
            return super().publish(topic, payload, qos, retain, properties)
        last, topic_bytes, topic_field = self._lean_topic
        if topic != last:  # never for "" (refused above)
            topic_bytes = topic.encode("utf-8")
            self._raise_for_invalid_topic(topic_bytes)  # wildcards, length: ValueError as paho
            topic_field = _U16.pack(len(topic_bytes)) + topic_bytes
            self._lean_topic = (topic, topic_bytes, topic_field)
        if len(payload) > 268435455:
            raise ValueError("Payload too large.")
        mid = self._last_mid + 1  # paho `_mid_generate` (its lock guards against other threads)
        if mid == 65536:
            mid = 1
        self._last_mid = mid
        # paho's MQTTMessage(mid, topic) with the fields paho's `publish` then sets, each slot set once (paho's
        # __init__ sets all ten, `publish` six of them again; tests/unit/transports/test_lean_reader.py
        # compares every slot). The info is paho's class as installed (paho_tuning's shared condition).
        message = _new_message(mqtt.MQTTMessage)
        message.timestamp = time.monotonic()
        message.state = mqtt.mqtt_ms_invalid
        message.dup = False
        message.mid = mid
        message._topic = topic_bytes
        message.payload = payload
        message.qos = qos
        message.retain = False
        message.info = mqtt.MQTTMessageInfo(mid)
        message.properties = None
        out = self._out_messages
        if (self._max_queued_messages > 0 and len(out) >= self._max_queued_messages) or mid in out:
            message.info.rc = mqtt.MQTT_ERR_QUEUE_SIZE
            return message.info
        out[mid] = message
        if self._max_inflight_messages and self._inflight_messages >= self._max_inflight_messages:
            message.state = mqtt.mqtt_ms_queued  # sent by _update_inflight when an ack frees a slot
            message.info.rc = mqtt.MQTT_ERR_SUCCESS
            return message.info
        self._inflight_messages += 1
        message.state = mqtt.mqtt_ms_wait_for_puback if qos == 1 else mqtt.mqtt_ms_wait_for_pubrec
        message.info.rc = self._packet_queue(_PUBLISH, _publish_packet(topic_field, payload, qos, mid), mid, qos,
                                             message.info)
        return message.info

    def lean_buffered(self) -> bool:
        """A whole packet is already read and waits in the buffer (asked after each read: mostly empty)."""
        buf = self._lean_in
        return bool(buf) and complete_packet(buf) is not None

    def _sock_close(self) -> None:
        self._lean_in = bytearray()  # bytes of a closed connection never reach the next one
        super()._sock_close()

    def _create_socket_connection(self) -> Any:
        return open_connection((self._host, self._port), self.lean_source, self._connect_timeout)

    def _ssl_wrap_socket(self, tcp_sock: Any) -> Any:  # native_tls.TlsSocket: paho needs only its socket API
        if self._ssl_context is None:  # paho calls this only after tls_set_context (new_client)
            raise ValueError("TLS context not set")
        try:
            own = self.lean_contexts.context_for(*self.lean_cert) if self.lean_contexts is not None else None
        except BaseException:
            tcp_sock.close()
            raise
        if own is not None:
            return native_tls.handshake(tcp_sock, own, self._host, self._connect_timeout, cert=None)
        return native_tls.handshake(tcp_sock, self._ssl_context, self._host, self._connect_timeout,
                                    cert=self.lean_cert)
