"""The `lean` transport: thousands of mTLS Astarte devices per process on one shared I/O path.

On the wire it is astarte-device-sdk 0.14.0, byte for byte (simulator.transports.wire; device_mqtt.py): MQTT 3.1.1,
clean session True and an empty client id (the SDK's bare `mqtt.Client()`: paho's defaults), keepalive 60 s (paho
`connect_async` default), max 20 in-flight (paho default), TLS with the device certificate; on CONNACK without session
present: SUBSCRIBE QoS 2 to control/consumer/properties and each server-owned interface `/#`, introspection,
emptyCache, device-owned properties, producer/properties (with a session present: nothing). What differs is the
execution model: paho Clients driven through the external loop API by simulator.transports.lean_loop (no thread, no
loop greenlet per device) -- the SDK's `loop_start()` thread per device costs ~1 s p50 at 1,000 devices
(docs/protocol.md section 7). Acks: paho's on_publish(mid) -> monotonic time -> the publish's on_ack(t, None):
QoS 0 when written to the socket, QoS 1 on PUBACK, QoS 2 on PUBCOMP.

In-flight publishes when the connection drops -- decided as follows, so nothing is lost silently:
- unexpected loss (broker gone, network, keepalive): QoS 1/2 stay in paho's queue and are retransmitted after the
  automatic reconnect (paho `_messages_reconnect_reset_out`, as the SDK's paho thread does); their on_ack fires on the
  late PUBACK/PUBCOMP, so the outage shows up as latency. Unsent QoS 0 -> on_ack(t, "disconnected").
- explicit `disconnect()` (a simulated reboot, the end of the run) and `LeanFleet.stop()`: everything still pending is
  abandoned, reported on_ack(t, "disconnected"), and dropped from paho's queue so a later reconnect never replays it
  (the device-side view; the collector may still have received it).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import gevent
import gevent.event
import paho.mqtt.client as mqtt

from simulator.errors import UsageError
from simulator.events import Value
from simulator.transports import wire
from simulator.transports.base import AckCallback, DataCallback, OnboardingTimes, PublishError
from simulator.transports.credentials import DeviceCredentials
from simulator.transports.lean_loop import READ, Slot
from simulator.transports.lean_services import ConnectError, LeanServices
from simulator.transports.pairing_client import onboard

__all__ = ["CONNECTED", "RECONNECTING", "LeanTransport"]

_LOG = logging.getLogger(__name__)
# Connection states (LeanTransport.state); LeanFleet.stats counts them.
NEW, CONNECTING, CONNECTED, RECONNECTING, CLOSING, CLOSED = range(6)


class LeanTransport:
    """One device's connection (transports.base.Transport). Not thread-safe: one device, one caller."""

    def __init__(self, fleet: LeanServices, device_id: str) -> None:
        self.device_id = device_id
        self.fleet = fleet
        self.state = NEW
        self.client: Any = None  # lean_client.LeanClient (a paho Client)
        self.cert_pem: bytes | None = None
        self.slot: Slot | None = None
        self.pending: dict[int, tuple[AckCallback | None, int]] = {}
        self.early: dict[int, float] = {}  # on_publish that fired inside publish() (QoS 0 written at once)
        self.sending = False  # inside paho publish(): an unknown on_publish mid is ours, in `early`
        self.busy = False  # inside paho loop_read/write/misc: paho holds its callback lock, defer writes
        self.handshake_mids: set[int] = set()
        self.handshake_done = gevent.event.Event()
        self.connack = gevent.event.Event()
        self.connack_error: str | None = None
        self.connack_at: float | None = None  # fleet.clock.monotonic() when this connect's CONNACK was read
        self.session_present = False
        self.props: dict[tuple[str, str], object] = {}  # device-owned properties (the SDK's SQLite cache)
        self.data_cb: DataCallback | None = None
        self.attempt = 0
        self.reconnects = 0
        # Single flight: two reconnects at once made two sockets and orphaned one, watchers still in the loop.
        self._reconnect_scheduled = self._reconnect_running = False

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    # ---- connect ----

    def connect(self) -> OnboardingTimes:
        """Pairing (cached), TCP+TLS+CONNECT/CONNACK, handshake acked. Blocks only the calling greenlet.

        Already connected, connecting, or reconnecting by itself after a loss: returns at once (`connected`
        tells which). A reused but rejected credentials secret, a stale cached broker URL: handled (once)."""
        if self.state in (CONNECTED, CONNECTING, RECONNECTING):
            return OnboardingTimes(session_present=self.session_present)
        fleet, clock = self.fleet, self.fleet.clock
        times = OnboardingTimes()
        creds = onboard(fleet.pairing, fleet.cache, self.device_id, fleet.endpoint.agent_jwt, times,
                        revalidate=fleet.revalidate)
        url = urlparse(creds.broker_url or "")
        if url.hostname is None or url.port is None:  # device_mqtt.py `connect`: "invalid broker URL"
            raise ConnectError(self.device_id, f"invalid broker URL {creds.broker_url!r} from pairing")
        if self.client is None or creds.cert_pem != self.cert_pem:
            self.client = fleet.new_client(self)  # paho cannot change TLS settings of an existing client
            self.cert_pem = creds.cert_pem
        self.state = CONNECTING
        self.connack.clear()
        self.handshake_done.clear()
        self.connack_error = None
        self.connack_at = None
        t0 = clock.monotonic()
        for attempt in (0, 1):
            try:
                # broker_address: the fault proxy's address instead, when the run routes this device there
                self.client.connect(*fleet.broker_address(self.device_id, url.hostname, url.port),
                                    keepalive=fleet.keepalive_s)
                break
            except ConnectionRefusedError as exc:
                if attempt or times.pairing_info is not None:
                    self.state = CLOSED
                    raise ConnectError(self.device_id, f"connect to {url.netloc}: {exc}") from exc
                # A cached broker URL may be stale (the embedded backend moves port on restart): ask again.
                url = urlparse(self._refresh_broker_url(creds, times))
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.state = CLOSED
                raise ConnectError(self.device_id, f"connect to {url.netloc}: {exc}") from exc
            except UsageError:  # ports.PortsExhausted, a bad source address: the user must act
                self.state = CLOSED
                raise
        self._sync_write()
        self._wait_connected()
        connack_at = self.connack_at if self.connack_at is not None else t0  # set: CONNECTED needs a CONNACK
        times.connect = connack_at - t0
        times.session_present = self.session_present
        times.handshake = clock.monotonic() - connack_at
        return times

    def _refresh_broker_url(self, creds: DeviceCredentials, times: OnboardingTimes) -> str:
        t0 = self.fleet.clock.monotonic()
        broker_url = self.fleet.pairing.info(self.device_id, creds.secret)
        times.pairing_info = self.fleet.clock.monotonic() - t0
        self.fleet.cache.put(self.device_id, replace(creds, broker_url=broker_url))
        return broker_url

    def _wait_connected(self) -> None:
        """Until the CONNACK (timeout_s) and then the handshake's acks (timeout_s from the CONNACK) are in.

        One wait on `handshake_done`, which every end of a connect sets (acks, session present, refusal, loss,
        disconnect): waiting on `connack` first cost a second blocking Event.wait per connect -- its Timeout,
        the wake-up at the CONNACK and the switch back -- ~7 us of CPU (a gevent Event.wait(15) woken by
        another greenlet: 6.6 us, 20,000 waits, idle machine, 2026-12-07). `connack_at` (set when the CONNACK
        is read) gives the times and the handshake's own deadline."""
        timeout_s = self.fleet.timeout_s
        if not self.handshake_done.wait(timeout_s) and self.connack_at is not None and self.connack_error is None:
            # CONNACK in time, acks not yet: they get timeout_s from the CONNACK, as a wait of their own would.
            self.handshake_done.wait(max(0.0, self.connack_at + timeout_s - self.fleet.clock.monotonic()))
        what = "handshake acks" if self.connack_at is not None and self.connack_error is None else "CONNACK"
        if not self.handshake_done.is_set():
            self.disconnect()
            raise ConnectError(self.device_id, f"no {what} within {timeout_s} s")
        if self.connack_error is not None or self.state != CONNECTED:
            reason = self.connack_error or "connection lost"
            self.disconnect()
            raise ConnectError(self.device_id, f"{what}: {reason}")

    # ---- publishing ----

    def publish(self, interface: str, path: str, value: Value, timestamp_ms: int | None,
                on_ack: AckCallback | None = None) -> None:
        # The *_at forms take the milliseconds: no datetime per OTAEvent (wire.encode_value_at says why).
        iface = wire.validate_publish_at(self.fleet.interfaces, interface, path, value, timestamp_ms)
        self._send(wire.data_topic(self.fleet.endpoint.realm, self.device_id, interface, path),
                   wire.encode_value_at(value, timestamp_ms), wire.qos_for(iface, path), on_ack)

    def set_property(self, interface: str, path: str, value: Value) -> None:
        wire.validate_property(self.fleet.interfaces, interface, path, value)
        if self.state != CONNECTED:  # like the SDK: DeviceDisconnectedError before storing
            raise PublishError("disconnected", f"device {self.device_id} is not connected")
        if value is None:
            self.props.pop((interface, path), None)
        else:
            self.props[(interface, path)] = value
        self._send(wire.data_topic(self.fleet.endpoint.realm, self.device_id, interface, path),
                   wire.encode_value(value, None), wire.PROPERTIES_QOS, None)

    def _send(self, topic: str, payload: bytes, qos: int, on_ack: AckCallback | None) -> None:
        c = self.client
        if self.state != CONNECTED or c is None:
            raise PublishError("disconnected", f"device {self.device_id} is not connected")
        self.sending = True
        try:
            info = c.publish(topic, payload, qos)
        finally:
            self.sending = False
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise PublishError("queue_full", f"paho queue full ({len(self.pending)} pending)")
        early = self.early.pop(info.mid, None)
        if early is not None:
            if on_ack is not None:
                on_ack(early, None)
        elif qos == 0 and info.rc != mqtt.MQTT_ERR_SUCCESS:
            if on_ack is not None:
                on_ack(self.fleet.clock.monotonic(), "disconnected")
        else:  # QoS 1/2 with NO_CONN stay in paho's queue for the reconnect: still pending
            self.pending[info.mid] = (on_ack, qos)
        self._sync_write()

    def on_data(self, callback: DataCallback) -> None:
        self.data_cb = callback

    # ---- disconnect ----

    def disconnect(self) -> None:
        """Send DISCONNECT, close, report every pending publish as "disconnected". Idempotent."""
        if self.state in (NEW, CLOSED, CLOSING):
            return
        self.state = CLOSING
        c = self.client
        if c is not None:
            if c.socket() is not None:
                c.disconnect()  # DISCONNECT is written at once; paho then closes the socket
            if c.socket() is not None:
                c._sock_close()  # unwritable socket: do not wait for a peer that may be gone
            c.drop_out_messages()
        self.fleet.loop.remove_member(self)
        self.state = CLOSED
        self._fail_pending(qos0_only=False)
        self.connack.set()
        self.handshake_done.set()

    def _fail_pending(self, qos0_only: bool) -> None:
        now = self.fleet.clock.monotonic()
        for mid, (cb, qos) in list(self.pending.items()):
            if qos0_only and qos != 0:
                continue
            del self.pending[mid]
            if cb is not None:
                cb(now, "disconnected")
        if not qos0_only:
            self.early.clear()

    # ---- paho callbacks (run in the loop's greenlets or in the caller of connect/publish) ----

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        if self.slot is not None:  # a socket paho replaced without closing: its watchers must not outlive it
            self.fleet.loop.unregister(self.slot)
        self.slot = self.fleet.loop.register(sock.fileno(), self)
        self.fleet.loop.add_member(self)  # keepalive, and CONNACK timeout of a reconnect (paho loop_misc)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self.fleet.loop.remove_member(self)
        if self.slot is not None:
            self.fleet.loop.unregister(self.slot)
            self.slot = None

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.state in (CLOSING, CLOSED):  # disconnect() won the race against a reconnect in progress
            client.disconnect()
            return
        self.connack_at = self.fleet.clock.monotonic()
        if reason.is_failure:
            self.connack_error = f"CONNACK refused: {reason}"
            self.connack.set()
            self.handshake_done.set()  # the end of this connect (_wait_connected)
            return
        self.state = CONNECTED
        self.attempt = 0
        self.session_present = bool(flags.session_present)
        if self.session_present:  # device_mqtt.py `__on_connect`: nothing to do
            self.handshake_done.set()
        else:
            self._handshake(client)
        self.connack.set()

    def _handshake(self, c: Any) -> None:
        """device_mqtt.py `__on_connect` without session: queued here, written after the CONNACK is read."""
        realm, dev, fleet = self.fleet.endpoint.realm, self.device_id, self.fleet
        mids: set[int] = set()
        for topic in wire.handshake_subscriptions(realm, dev, fleet.interfaces.values()):
            mids.add(int(c.subscribe(topic, qos=2)[1] or 0))
        mids.add(c.publish(wire.base_topic(realm, dev), fleet.introspection, 2).mid)
        mids.add(c.publish(wire.empty_cache_topic(realm, dev), wire.EMPTY_CACHE_PAYLOAD, 2).mid)
        for (name, path), value in self.props.items():
            topic = wire.data_topic(realm, dev, name, path)
            mids.add(c.publish(topic, wire.encode_value(value, None), wire.PROPERTIES_QOS).mid)
        paths = [name + path for name, path in self.props]
        mids.add(c.publish(wire.producer_properties_topic(realm, dev),
                           wire.producer_properties_payload(paths), 2).mid)
        self.handshake_mids = mids

    def _handshake_ack(self, mid: int) -> None:
        self.handshake_mids.discard(mid)
        if not self.handshake_mids:
            self.handshake_done.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, properties: Any) -> None:
        self._handshake_ack(mid)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        now = self.fleet.clock.monotonic()
        if mid in self.handshake_mids:
            self._handshake_ack(mid)
            return
        entry = self.pending.pop(mid, None)
        if entry is None:
            if self.sending:
                self.early[mid] = now
        elif entry[0] is not None:
            entry[0](now, None)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        realm, dev = self.fleet.endpoint.realm, self.device_id
        if msg.topic == wire.consumer_properties_topic(realm, dev):
            return  # purge list for server-owned properties: we keep none (the SDK purges its cache)
        try:
            data = wire.decode_server_message(realm, dev, msg.topic, msg.payload, self.fleet.interfaces)
        except wire.WireError as exc:
            _LOG.warning("device %s: dropped incoming message: %s", dev, exc)  # as the SDK does
            return
        if self.data_cb is not None:
            self.data_cb(data.interface, data.path, data.value)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.state in (CLOSING, CLOSED):
            return
        was = self.state
        self._fail_pending(qos0_only=True)
        if was == CONNECTING:  # the connect() caller reports it
            self.state = CLOSED
            self.connack_error = self.connack_error or f"connection closed ({reason})"
            self.connack.set()
            self.handshake_done.set()
            return
        self.state = RECONNECTING
        self.handshake_done.set()
        if not self.fleet.stopped:
            self._schedule_reconnect()

    # ---- automatic reconnect ----

    def _schedule_reconnect(self) -> None:
        if not self._reconnect_scheduled:
            self._reconnect_scheduled = True
            self.fleet.loop.call_later(self.fleet.backoff_s(self.attempt), self._spawn_reconnect)

    def _spawn_reconnect(self) -> None:
        self._reconnect_scheduled = False
        if self.state == RECONNECTING and not self.fleet.stopped and not self._reconnect_running:
            gevent.spawn(self._reconnect)

    def _reconnect(self) -> None:
        if self._reconnect_running:
            return
        self._reconnect_running = True  # cleared in `finally`
        try:
            with self.fleet.reconnect_gate:  # a broker restart must not become 10,000 TLS handshakes at once
                if self.state != RECONNECTING or self.client is None or self.fleet.stopped:
                    return
                self.attempt += 1
                try:
                    self.client.reconnect()
                except (OSError, ssl.SSLError, UsageError) as exc:
                    _LOG.debug("device %s: reconnect attempt %d failed: %s", self.device_id, self.attempt, exc)
                    self._schedule_reconnect()
                    return
                self.reconnects += 1
                self._sync_write()
        finally:
            self._reconnect_running = False

    # ---- lean_loop.Channel ----

    def handle_read(self) -> None:
        c = self.client
        if c is None:
            return
        self._drive(c.loop_read)
        sock = c.socket()
        if sock is not None and self.slot is not None and (
                c.lean_buffered() or (hasattr(sock, "pending") and sock.pending())):
            # A whole packet already read (LeanClient._packet_read), or TLS bytes already decrypted: epoll
            # will not tell.
            self.fleet.loop.requeue(self.slot, READ)

    def handle_write(self) -> None:
        if self.client is not None:
            self._drive(self.client.loop_write)

    def handle_misc(self, now: float) -> None:
        c = self.client
        if c is None:
            return
        if c.lean_misc_idle(now):  # paho's step would do nothing (LeanClient.lean_misc_idle: why)
            self._sync_write()  # what _drive does after it
            return
        self._drive(c.loop_misc)

    def _drive(self, step: Any) -> None:
        """One paho step. Callbacks it runs may publish; their writes wait for the end of the step, because
        paho holds its (non-reentrant) callback lock meanwhile and writing then could deadlock the loop."""
        self.busy = True
        c = self.client
        # paho writes each packet it queues inside a step (a PUBREL per PUBREC read) at once, one TLS write
        # each; deferred (LeanClient._packet_queue) they are only queued, and _sync_write below sends them
        # all in one write (LeanClient._packet_write). Same bytes, same order, microseconds later.
        c.lean_defer = True
        try:
            step()
        finally:
            c.lean_defer = False
            self.busy = False
        self._sync_write()

    def _sync_write(self) -> None:
        """Write what paho queued now; keep a write watcher only while bytes remain (socket full)."""
        c = self.client
        if c is None or self.slot is None or self.busy:
            return
        if c.want_write():
            c.loop_write()
            slot = self.slot
            if slot is not None:
                left = c.want_write()
                # Written whole with no watcher armed (every PUBREL, written after the step that read its
                # PUBREC): IoLoop.want_write(slot, False) would do nothing.
                if left or slot.writer is not None:
                    self.fleet.loop.want_write(slot, left)
        elif self.slot.writer is not None:  # nothing left to write: disarm (IoLoop.want_write)
            self.fleet.loop.want_write(self.slot, False)
