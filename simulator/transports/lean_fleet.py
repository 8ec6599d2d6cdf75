"""LeanFleet: what the lean transports of one process share -- one I/O loop, one pairing client (HTTP
keep-alive pool), one credentials cache, the source-address pool -- and the factory of LeanTransport.

See simulator.transports.lean for the wire behaviour and simulator.transports.lean_loop for the I/O model.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Mapping

import gevent.lock
from paho.mqtt.enums import CallbackAPIVersion

from simulator.clock import Clock, MonotonicClock
from simulator.errors import UsageError
from simulator.transports import wire
from simulator.transports.base import Endpoint
from simulator.transports.credentials import CredentialsCache
from simulator.transports.lean import CONNECTED, RECONNECTING, LeanTransport
from simulator.transports.lean_client import LeanClient
from simulator.transports.lean_loop import IoLoop
from simulator.transports.paho_tuning import (
    install_shared_ack_fields,
    install_shared_message_condition,
)
from simulator.transports.pairing_client import ONBOARDING_AT_ONCE, PairingClient
from simulator.transports.ports import SourceAddressPool
from simulator.transports.tls_contexts import DEFAULT_CAPACITY, DeviceContexts

__all__ = ["LeanFleet"]


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
