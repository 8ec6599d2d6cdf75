"""The `sdk` transport: one UNMODIFIED astarte-device-sdk 0.14.0 `DeviceMqtt` per virtual device.

What the SDK does on its own (astarte/device/device_mqtt.py): certificate setup (EC P-256 key + CSR, or
`/verify` of a cached certificate), `GET /devices/<id>` for the broker URL, then paho `connect_async` +
`loop_start()` -- one network thread per device (a greenlet once gevent has monkey-patched threading) -- and
the clean-session handshake (subscriptions, introspection, emptyCache, properties; docs/protocol.md section 1).
What we add, none of it visible on the wire (simulator.transports.sdk_patches):

- registration with the agent JWT (`register_device_with_jwt_token`) only when the credentials cache has no
  secret; the SDK's persistency_dir is `cache.device_dir(id)` so keys/certs are reused (the SDK then calls
  `/verify`, docs/protocol.md section 6); the property cache is in memory (simulator.transports.memory_db);
- a poll()-based wait for paho, lifting the ~338-devices-per-process select() ceiling;
- ack timing by a hook on the paho client (the SDK drops the MQTTMessageInfo);
- timing of each onboarding phase, and a disconnect that also works while CONNECTING (the SDK's is a no-op
  then, leaving the paho thread reconnecting forever).

Limit (measured, docs/protocol.md sections 6-7): the thread per device costs ~1.1-1.6 ms CPU per QoS 2 message;
publish->ack p50 stays near 1-2 ms up to ~300 devices at 1 msg/device/s and collapses (~900 ms) at 1,000.
`SDK_COMFORT_DEVICES` lets the generator-health verdict flag runs past it; use the lean transport beyond.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.clock import Clock, MonotonicClock
from simulator.errors import FleetsimError
from simulator.events import Value
from simulator.transports.base import AckCallback, DataCallback, Endpoint, OnboardingTimes, PublishError
from simulator.transports.credentials import CredentialsCache, DeviceCredentials
from simulator.transports.memory_db import MemoryDatabase
from simulator.transports.sdk_patches import (
    AckTracker,
    install_pairing_shim,
    install_poll_select,
    pairing_calls,
    register_pairing_ca,
)

__all__ = ["SDK_COMFORT_DEVICES", "SdkConnectError", "SdkFleet", "SdkTransport", "load_interfaces"]

_LOG = logging.getLogger(__name__)

# Devices per process up to which a paho thread per device keeps publish->ack p50 near 1-2 ms at
# 1 msg/device/s on a 2-vCPU machine (docs/protocol.md section 7: p50 ~900 ms at 1,000). The generator-health
# verdict flags runs of the sdk transport past it.
SDK_COMFORT_DEVICES = 300

DEFAULT_CONNECT_TIMEOUT_S = 30.0


class SdkConnectError(FleetsimError):
    """A device could not be onboarded or connected; one line naming the device and the cause."""


def load_interfaces(interfaces_dir: Path | str) -> list[dict[str, Any]]:
    """Parse every interface JSON in the directory once (a fleet shares the parsed documents)."""
    folder = Path(interfaces_dir)
    if not folder.is_dir():
        raise SdkConnectError(f"{folder}: interfaces directory not found")
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SdkConnectError(f"{path}: not a readable interface JSON ({exc})") from exc
        if not isinstance(doc, dict) or "interface_name" not in doc:
            raise SdkConnectError(f"{path}: interface_name: missing (not an Astarte interface)")
        docs.append(doc)
    return docs


def _chmod_private(crypto_dir: Path) -> None:
    """The SDK writes device.key/.crt with the process umask (crypto.py open(..., "wb")); the directories
    above are 0700 (CredentialsCache), so nobody else could read them even before this tightening to 0600."""
    for name in ("device.key", "device.crt"):
        path = crypto_dir / name
        if path.exists():
            os.chmod(path, 0o600)


class SdkTransport:
    """transports.base.Transport over one astarte.device.DeviceMqtt. One device, one caller."""

    def __init__(
        self,
        device_id: str,
        endpoint: Endpoint,
        interfaces_dir: Path | str,
        cache: CredentialsCache,
        *,
        interfaces: list[dict[str, Any]] | None = None,
        clock: Clock | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        install_poll_select()
        install_pairing_shim()
        if endpoint.ca_file and endpoint.pairing_url.startswith("https:") and not endpoint.ignore_ssl_errors:
            register_pairing_ca(endpoint.pairing_url, endpoint.ca_file)
        self.device_id = device_id
        self._endpoint = endpoint
        self._cache = cache
        self._interfaces = interfaces if interfaces is not None else load_interfaces(interfaces_dir)
        self._clock = clock or MonotonicClock()
        self._connect_timeout = connect_timeout
        # One property cache for the life of the virtual device: it survives reboots like the SDK's SQLite.
        self._db = MemoryDatabase()
        self._acks = AckTracker(self._clock.monotonic)
        self._on_data: DataCallback | None = None
        self._device: Any = None  # astarte.device.DeviceMqtt while connected or connecting
        self._client: Any = None  # its current paho client (the SDK replaces it after a certificate renewal)
        self._connected_evt: Any = None
        self._connack_at: float | None = None
        self._session_present = False
        self._refused: int | None = None

    # ------------------------------------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        device = self._device
        return bool(device is not None and device.is_connected())

    @property
    def unacked(self) -> int:
        """Publishes still waiting for their ack (PUBACK/PUBCOMP)."""
        return self._acks.pending()

    def on_data(self, callback: DataCallback) -> None:
        self._on_data = callback

    # ----------------------------------------------------------------------------------------- connect

    def connect(self) -> OnboardingTimes:
        """Register if the cache has no secret, let the SDK set up its certificate and connect, and block the
        calling thread/greenlet until the SDK's on_connected (after its handshake) or the timeout."""
        from astarte.device import DeviceMqtt
        from astarte.device.exceptions import AstarteError

        if self._device is not None:
            self.disconnect()
        times = OnboardingTimes()
        now = self._clock.monotonic
        secret = self._secret(times)
        persistency = self._cache.device_dir(self.device_id)
        try:
            device = DeviceMqtt(
                self.device_id, self._endpoint.realm, secret, self._endpoint.pairing_url, str(persistency),
                database=self._db, ignore_ssl_errors=self._endpoint.ignore_ssl_errors,
            )
            for doc in self._interfaces:
                device.add_interface_from_json(doc)
        except AstarteError as exc:
            raise SdkConnectError(f"device {self.device_id}: SDK setup failed: {exc}") from exc
        self._hook_device(device)
        event = threading.Event()  # looked up now: a gevent Event once monkey-patched
        self._connected_evt = event
        self._connack_at = None
        self._refused = None
        device.set_events_callbacks(
            on_connected=self._sdk_connected,
            on_data_received=self._sdk_data,
            on_disconnected=self._sdk_disconnected,
        )
        self._device = device
        started = now()
        try:
            with pairing_calls() as calls:
                device.connect()  # blocking: certificate + GET /devices/<id>; then paho's thread connects
        except (AstarteError, OSError) as exc:
            self._force_stop()
            raise SdkConnectError(f"device {self.device_id}: onboarding at {self._endpoint.pairing_url} "
                                  f"failed: {type(exc).__name__}: {exc}") from exc
        finally:
            _chmod_private(persistency / self.device_id / "crypto")  # also when the CSR was refused
        loop_started = now()
        info_start = calls.start_of("pairing_info")
        times.pairing_info = calls.total("pairing_info")
        times.certificate = (info_start if info_start is not None else loop_started) - started
        for kind in ("verify", "certificate"):
            spent = calls.total(kind)
            if spent is not None:
                times.extra[f"http_{kind}"] = spent
        if not event.wait(self._connect_timeout) or not self.connected:
            refused = self._refused
            self._force_stop()
            why = f"broker refused the connection (CONNACK rc={refused})" if refused else (
                f"not connected within {self._connect_timeout:g} s")
            raise SdkConnectError(f"device {self.device_id}: {why}")
        done = now()
        connack = self._connack_at if self._connack_at is not None else done
        times.connect = connack - loop_started
        times.handshake = done - connack
        times.session_present = self._session_present
        return times

    def _secret(self, times: OnboardingTimes) -> str:
        from astarte.device import register_device_with_jwt_token
        from astarte.device.exceptions import AstarteError, DeviceAlreadyRegisteredError

        cached = self._cache.get(self.device_id)
        if cached is not None:
            return cached.secret
        started = self._clock.monotonic()
        try:
            secret: str = register_device_with_jwt_token(
                self.device_id, self._endpoint.realm, self._endpoint.agent_jwt, self._endpoint.pairing_url,
                self._endpoint.ignore_ssl_errors,
            )
        except DeviceAlreadyRegisteredError as exc:
            raise SdkConnectError(
                f"device {self.device_id}: already registered at {self._endpoint.pairing_url} but its secret "
                f"is not in {self._cache.base}; `fleetsim devices unregister {self.device_id}` (same --target "
                "and --state-dir) frees it, or restore the cache") from exc
        except (AstarteError, OSError) as exc:
            raise SdkConnectError(f"device {self.device_id}: registration at {self._endpoint.pairing_url} "
                                  f"failed: {type(exc).__name__}: {exc}") from exc
        times.registration = self._clock.monotonic() - started
        self._cache.put(self.device_id, DeviceCredentials(secret))
        return secret

    def _hook_device(self, device: Any) -> None:
        """Hook the SDK's paho client now, and again whenever the SDK builds a new one (it does after a
        certificate renewal, device_mqtt.py `__on_disconnect` -> `__setup_mqtt_client`)."""
        setup = device._DeviceMqtt__setup_mqtt_client

        def setup_and_hook() -> None:
            setup()
            self._hook_client(device._DeviceMqtt__mqtt_client)

        device._DeviceMqtt__setup_mqtt_client = setup_and_hook
        self._hook_client(device._DeviceMqtt__mqtt_client)

    def _hook_client(self, client: Any) -> None:
        self._client = client
        self._acks.attach(client)
        ca_file = self._endpoint.ca_file
        tls_set = client.tls_set

        def tls_set_with_ca(*args: Any, **kwargs: Any) -> Any:
            # The SDK passes ca_certs=None (system store); a private CA (the embedded backend) is added here.
            if ca_file and kwargs.get("ca_certs") is None and not self._endpoint.ignore_ssl_errors:
                kwargs["ca_certs"] = ca_file
            return tls_set(*args, **kwargs)

        client.tls_set = tls_set_with_ca
        sdk_on_connect = client.on_connect

        def on_connect(c: Any, userdata: Any, flags: Any, rc: Any) -> None:
            # Runs on paho's thread when CONNACK arrives, before the SDK's handshake and its on_connected.
            self._connack_at = self._clock.monotonic()
            present = flags.get("session present") if isinstance(flags, Mapping) else False
            self._session_present = bool(present)
            sdk_on_connect(c, userdata, flags, rc)
            if rc:
                self._refused = int(rc)
                event = self._connected_evt
                if event is not None:
                    event.set()

        client.on_connect = on_connect

    # ----------------------------------------------------------------------------------- SDK callbacks

    def _sdk_connected(self, _device: Any) -> None:
        event = self._connected_evt
        if event is not None:
            event.set()

    def _sdk_data(self, _device: Any, interface: str, path: str, payload: object) -> None:
        callback = self._on_data
        if callback is None:
            return
        try:
            callback(interface, path, payload)  # type: ignore[arg-type]  # decoded BSON: a Value
        except Exception:  # never let a handler kill the paho thread of this device
            _LOG.exception("device %s: data handler failed on %s%s", self.device_id, interface, path)

    def _sdk_disconnected(self, _device: Any, rc: int) -> None:
        if rc:
            _LOG.info("device %s: connection lost (rc=%s); the SDK reconnects", self.device_id, rc)

    # ----------------------------------------------------------------------------------------- publish

    def publish(
        self,
        interface: str,
        path: str,
        value: Value,
        timestamp_ms: int | None,
        on_ack: AckCallback | None = None,
    ) -> None:
        stamp = None if timestamp_ms is None else datetime.fromtimestamp(timestamp_ms / 1000.0, tz=UTC)
        if isinstance(value, Mapping):
            # Interface.validate_payload_and_timestamp demands a dict for object aggregates.
            self._send(lambda d: d.send_aggregate(interface, path, dict(value), stamp), on_ack)
        else:
            self._send(lambda d: d.send(interface, path, value, stamp), on_ack)

    def set_property(self, interface: str, path: str, value: Value) -> None:
        if value is None:
            self._send(lambda d: d.unset_property(interface, path), None)
        else:
            self._send(lambda d: d.send(interface, path, value), None)

    def _send(self, call: Callable[[Any], None], on_ack: AckCallback | None) -> None:
        from astarte.device.exceptions import (
            DeviceDisconnectedError,
            InterfaceNotFoundError,
            ValidationError,
        )

        device = self._device
        if device is None:
            raise PublishError("disconnected", f"device {self.device_id} is not connected")
        self._acks.expect(on_ack)
        try:
            call(device)
        except (ValidationError, InterfaceNotFoundError) as exc:
            raise PublishError("validation", str(exc)) from exc
        except DeviceDisconnectedError as exc:
            raise PublishError("disconnected", str(exc)) from exc
        finally:
            self._acks.disarm()

    # -------------------------------------------------------------------------------------- disconnect

    def disconnect(self) -> None:
        """Close the connection and stop the paho thread; unacked publishes get on_ack(t, "disconnected").
        Idempotent. Works while CONNECTING too (DeviceMqtt.disconnect() is a no-op then)."""
        device = self._device
        if device is None:
            return
        if device.is_connected():
            device.disconnect()  # paho disconnect + loop_stop (joins the thread)
        self._force_stop()
        self._acks.fail_all("disconnected")

    def _force_stop(self) -> None:
        """Stop paho's thread whatever the SDK's state (CONNECTING: the SDK would leave it reconnecting)."""
        client = self._client
        self._device = None
        self._connected_evt = None
        if client is None:
            return
        with contextlib.suppress(OSError, ValueError):  # no socket yet: loop_stop still ends the thread
            client.disconnect()
        client.loop_stop()
        # paho closes its wake-up socket pair only in Client.__del__, i.e. at the next GC cycle (the SDK's
        # callbacks make a reference cycle): 2 fds per connect would pile up over reboots. The thread is gone,
        # so closing them now is safe (paho checks for None before writing to the pair).
        client._reset_sockets()


class SdkFleet:
    """Makes SdkTransports that share one parsed interface set; `stop()` disconnects every one it made."""

    comfort_devices = SDK_COMFORT_DEVICES

    def __init__(
        self,
        endpoint: Endpoint,
        interfaces_dir: Path | str,
        cache: CredentialsCache,
        *,
        clock: Clock | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        install_poll_select()
        self._endpoint = endpoint
        self._interfaces_dir = Path(interfaces_dir)
        self._interfaces = load_interfaces(interfaces_dir)
        self._cache = cache
        self._clock = clock
        self._timeout = connect_timeout
        self._made: list[SdkTransport] = []

    def transport(self, device_id: str) -> SdkTransport:
        made = SdkTransport(device_id, self._endpoint, self._interfaces_dir, self._cache,
                            interfaces=self._interfaces, clock=self._clock, connect_timeout=self._timeout)
        self._made.append(made)
        return made

    def stop(self) -> None:
        made, self._made = self._made, []
        for transport in made:
            try:
                transport.disconnect()
            except Exception:  # one stuck device must not keep the others connected
                _LOG.exception("device %s: disconnect failed", transport.device_id)
