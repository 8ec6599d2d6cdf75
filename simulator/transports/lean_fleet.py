"""LeanFleet: what the lean transports of one process share -- one I/O loop, one pairing client (HTTP
keep-alive pool), one credentials cache, the source-address pool -- and the factory of LeanTransport.

See simulator.transports.lean for the wire behaviour and simulator.transports.lean_loop for the I/O model.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Mapping
from typing import Any

import gevent.lock
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.clock import Clock, MonotonicClock
from simulator.errors import UsageError
from simulator.transports import native_tls, wire
from simulator.transports.base import Endpoint
from simulator.transports.credentials import CredentialsCache
from simulator.transports.lean import CONNECTED, RECONNECTING, LeanTransport
from simulator.transports.lean_loop import IoLoop
from simulator.transports.paho_tuning import install_shared_ack_fields, install_shared_message_condition
from simulator.transports.pairing_client import ONBOARDING_AT_ONCE, PairingClient
from simulator.transports.ports import SourceAddressPool, open_connection
from simulator.transports.tls_contexts import DEFAULT_CAPACITY, DeviceContexts

__all__ = ["LeanClient", "LeanFleet"]

_PUBLISH, _DISCONNECT = 0x30, 0xE0  # MQTT control packet types (high nibble of the fixed header)


class LeanClient(mqtt.Client):
    """paho Client whose TCP socket comes from ports.open_connection (source address, TCP_NODELAY), whose
    TLS socket is CPython's own, handshaken cooperatively (native_tls: why), and whose queued packets leave
    in one write (`_packet_write`)."""

    lean_source = ""
    lean_cert: tuple[str, str] = ("", "")  # the device's certificate and key files
    lean_contexts: DeviceContexts | None = None  # per-device contexts of reconnecting devices (tls_contexts)
    # Bytes of the last gathered write that raised WantWrite: OpenSSL wants the retry to be the same length
    # (SSL_write without partial writes), so the retry gathers exactly those packets again. 0: none.
    _lean_retry_len = 0

    def _packet_write(self) -> Any:
        """paho's `_packet_write`, but the packets queued together leave in ONE TLS record and syscall.

        The Astarte handshake queues ~22 packets at once (subscriptions, introspection, emptyCache, the
        properties, producer/properties) and paho writes each with its own SSL_write + send(2): on a
        reboot-every-operation campaign that was ~20 syscalls per reconnect (bench/campaign_capacity.py).
        The bytes on the TCP stream are the same, in the same order. Packets whose completion paho acts on
        (a QoS 0 PUBLISH: on_publish; DISCONNECT: close) go through paho's own loop, one by one, as before."""
        out = self._out_packet
        if len(out) < 2 and not self._lean_retry_len:
            return super()._packet_write()
        batch: list[Any] = []
        size = 0
        for packet in out:
            kind = packet["command"] & 0xF0
            if kind == _DISCONNECT or (kind == _PUBLISH and packet["qos"] == 0):
                break
            if self._lean_retry_len and size >= self._lean_retry_len:
                break
            batch.append(packet)
            size += packet["to_process"]
        if len(batch) < 2 or (self._lean_retry_len and size != self._lean_retry_len):
            self._lean_retry_len = 0
            return super()._packet_write()
        data = b"".join(bytes(p["packet"][p["pos"]:]) for p in batch)
        try:
            sent = self._sock_send(data)
        except (AttributeError, ValueError):
            return mqtt.MQTT_ERR_SUCCESS  # no socket: the packets stay queued, as paho does
        except BlockingIOError:
            self._lean_retry_len = size
            return mqtt.MQTT_ERR_AGAIN
        except OSError:
            return mqtt.MQTT_ERR_CONN_LOST
        self._lean_retry_len = 0
        for packet in batch:
            take = min(sent, packet["to_process"])
            packet["pos"] += take
            packet["to_process"] -= take
            sent -= take
            if packet["to_process"]:
                break
            out.popleft()  # written whole: paho does nothing else for a QoS 1/2 PUBLISH, PUBREL, SUBSCRIBE...
        self._last_msg_out = time.monotonic()  # paho's time_func, for keepalive
        return super()._packet_write() if out else mqtt.MQTT_ERR_SUCCESS

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


class LeanFleet:
    """The shared part: I/O loop, pairing client, credentials cache, source addresses. Also a factory."""

    def __init__(
        self,
        endpoint: Endpoint,
        interfaces: Mapping[str, object],
        *,
        clock: Clock | None = None,
        revalidate: bool = True,
        keepalive_s: int = 60,
        max_inflight: int = 20,
        clean_session: bool = True,
        timeout_s: float = 15.0,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        max_parallel_reconnects: int = 32,
        discard_corrupt: bool = False,
        max_device_contexts: int = DEFAULT_CAPACITY,
    ) -> None:
        install_shared_message_condition()  # paho_tuning: no Condition allocated per publish
        install_shared_ack_fields()  # paho_tuning: no MQTT 5 ReasonCode/Properties per 3.1.1 ack
        self.endpoint = endpoint
        self.interfaces = wire.as_interfaces(interfaces)
        self.clock: Clock = clock or MonotonicClock()
        self.revalidate = revalidate  # the SDK re-verifies the certificate and re-reads the broker URL
        self.keepalive_s = keepalive_s
        self.max_inflight = max_inflight
        self.clean_session = clean_session
        self.timeout_s = timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.loop = IoLoop()
        # One pooled connection per concurrent pairing call: onboardings plus reconnects (pairing_client).
        self.pairing = PairingClient(endpoint.pairing_url, endpoint.realm, endpoint.ca_file,
                                     endpoint.ignore_ssl_errors,
                                     pool_size=ONBOARDING_AT_ONCE + max_parallel_reconnects)
        self.cache = CredentialsCache.for_target(endpoint.credentials_dir, endpoint.realm, endpoint.pairing_url,
                                                 discard_corrupt)
        self.sources = SourceAddressPool(endpoint.source_addresses)
        self.reconnect_gate = gevent.lock.BoundedSemaphore(max_parallel_reconnects)
        self.introspection = wire.introspection_payload(self.interfaces.values())
        self.tls = self._shared_tls_context()
        # Devices keep their certificate loaded in a context of their own (up to a bound), unless the CA is
        # the system store (~860 KB per context): tls_contexts says why and what it costs.
        # max_device_contexts=0: every connect loads into the shared context (no memory per device).
        self.device_contexts = (DeviceContexts(self._shared_tls_context, max_device_contexts)
                                if (endpoint.ca_file or endpoint.ignore_ssl_errors) and max_device_contexts > 0
                                else None)
        self.devices: dict[str, LeanTransport] = {}
        self.stopped = False

    def transport(self, device_id: str) -> LeanTransport:
        """The device's transport (one per device id, created on first use)."""
        if self.stopped:
            raise UsageError("LeanFleet is stopped")
        dev = self.devices.get(device_id)
        if dev is None:
            dev = self.devices[device_id] = LeanTransport(self, device_id)
        return dev

    def __call__(self, device_id: str, interfaces: Mapping[str, object] | None = None) -> LeanTransport:
        """transports.base.TransportFactory; the fleet's interfaces are used (one introspection per fleet)."""
        return self.transport(device_id)

    def _shared_tls_context(self) -> ssl.SSLContext:
        """ONE client context for every device of the fleet: the endpoint's CA (the system store when None);
        each connection gets its device's certificate at wrap time (native_tls.handshake). A context per
        device cost ~20 KB of OpenSSL memory each (12.9 KB bare SSL_CTX + CA store + chain, OpenSSL 3,
        measured), a third of a connected device: only the first devices, up to a bound, get their own
        (tls_contexts, made by this same method so that their handshakes are the same)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.endpoint.ca_file)
        if self.endpoint.ignore_ssl_errors:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def new_client(self, dev: LeanTransport) -> LeanClient:
        """A paho client for one device, configured as the SDK's (device_mqtt.py `__setup_mqtt_client`,
        `__setup_crypto`): MQTT 3.1.1, paho defaults, TLS with the device certificate; callbacks -> dev."""
        client_id = "" if self.clean_session else f"{self.endpoint.realm}/{dev.device_id}"
        c = LeanClient(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=self.clean_session)
        c.lean_source = self.sources.next()
        dev_id = dev.device_id
        c.tls_set_context(self.tls)
        c.lean_cert = (str(self.cache.cert_path(dev_id)), str(self.cache.key_path(dev_id)))
        c.lean_contexts = self.device_contexts
        c.tls_insecure_set(self.endpoint.ignore_ssl_errors)
        c.max_inflight_messages_set(self.max_inflight)
        c.suppress_exceptions = True  # a failing user callback must not tear down the shared loop
        # No on_socket_register_write: paho then writes at once from publish() (lowest latency); the
        # transport arms a write watcher only when bytes remain (LeanTransport._sync_write).
        c.on_socket_open = dev._on_socket_open
        c.on_socket_close = dev._on_socket_close
        c.on_connect = dev._on_connect
        c.on_disconnect = dev._on_disconnect
        c.on_publish = dev._on_publish
        c.on_subscribe = dev._on_subscribe
        c.on_message = dev._on_message
        return c

    def broker_address(self, device_id: str, host: str, port: int) -> tuple[str, int]:
        """Where `device_id` connects: pairing's broker (host, port), or the endpoint's broker_override."""
        override, only = self.endpoint.broker_override, self.endpoint.broker_override_devices
        if override and (not only or device_id in self._override_set(only)):
            o_host, _, o_port = override.rpartition(":")
            return o_host, int(o_port)
        return host, port

    def _override_set(self, only: tuple[str, ...]) -> frozenset[str]:
        cached: frozenset[str] | None = getattr(self, "_override_cache", None)
        if cached is None:
            cached = frozenset(only)
            self._override_cache = cached
        return cached

    def backoff_s(self, attempt: int) -> float:
        """Reconnect delay: exponential from reconnect_min_s, capped, with +-50% jitter (no herd)."""
        base = min(self.reconnect_max_s, self.reconnect_min_s * (2 ** min(attempt, 20)))
        return float(base * random.uniform(0.5, 1.5))

    def stats(self) -> dict[str, int]:
        states = [d.state for d in self.devices.values()]
        return {
            "devices": len(states),
            "connected": states.count(CONNECTED),
            "reconnecting": states.count(RECONNECTING),
            "pending_acks": sum(len(d.pending) for d in self.devices.values()),
            "reconnects": sum(d.reconnects for d in self.devices.values()),
            "io_events": self.loop.served,
        }

    def stop(self) -> None:
        """Disconnect every device (pending acks -> "disconnected"), stop the loop. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        for dev in list(self.devices.values()):
            dev.disconnect()
        self.loop.stop()
        self.pairing.close()
