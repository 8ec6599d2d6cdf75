"""Hooks around an UNMODIFIED astarte-device-sdk 0.14.0 DeviceMqtt and its paho client: nothing on the wire
changes, we only observe (ack times, onboarding phase times) or lift a local ceiling (fds >= 1024).

Three hooks, each at the narrowest point we found:

1. `install_poll_select()` replaces the `select` module that paho.mqtt.client imported with a shim whose
   `select()` is built on `select.poll`. paho's `Client._loop` (paho-mqtt 2.2.0 client.py, the only
   `select.select` call in the module) waits on [socket, sockpairR] with `select()`, which fails for
   fds >= 1024 -- paho swallows the ValueError and reports a lost connection, so a process tops out near
   338 devices (3 fds each: TLS socket + the wake-up socket pair; docs/protocol.md section 6). `poll()` has no such
   limit. The
   `poll` class is looked up at call time, so after `gevent.monkey.patch_all()` it is gevent's cooperative
   `gevent.select.poll` (libev io watchers, no FD_SETSIZE either; gevent's own `select()` calls the real
   `select()` first and fails the same way -- docs/protocol.md section 7).
2. `AckTracker.attach(client)` wraps the paho client's `publish` (an instance attribute shadowing the method)
   and sets `on_publish` (unused by the SDK, device_mqtt.py `__setup_mqtt_client`). The SDK drops the
   MQTTMessageInfo (device_mqtt.py `_send_generic`), so the wrapper maps mid -> the caller's AckCallback.
3. `install_pairing_shim()` replaces the `requests` name inside astarte.device.pairing_handler with a proxy
   that (a) times each Pairing API call per caller (registration, certificate, verify, pairing info) and
   (b) passes `verify=<ca_file>` for pairing URLs registered with a private CA (the SDK only knows
   verify=True/False, pairing_handler.py).
"""

from __future__ import annotations

import select as _select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from paho.mqtt.enums import MQTTErrorCode

from simulator.transports.base import AckCallback
from simulator.transports.pairing_retry import send_with_retries

__all__ = [
    "AckTracker",
    "PairingCalls",
    "install_pairing_shim",
    "install_poll_select",
    "pairing_call_counts",
    "pairing_calls",
    "poll_select",
    "register_pairing_ca",
]

# poll() flags that select() reports as "readable" / "writable": errors and hang-ups make select() return the
# fd as ready so that the following recv()/send() surfaces the error; we do the same.
_READ_EVENTS = _select.POLLIN | _select.POLLPRI | _select.POLLERR | _select.POLLHUP | _select.POLLNVAL
_WRITE_EVENTS = _select.POLLOUT | _select.POLLERR | _select.POLLHUP | _select.POLLNVAL


def _fileno(obj: Any) -> int:
    fd = obj if isinstance(obj, int) else obj.fileno()
    if not isinstance(fd, int):
        raise TypeError(f"fileno() returned {type(fd).__name__}")
    if fd < 0:
        # select() raises ValueError for a closed socket (fileno -1); paho._loop maps it to "connection lost".
        raise ValueError("file descriptor cannot be a negative integer")
    return fd


def poll_select(
    rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """`select.select` semantics (seconds; None = block) on top of `select.poll` (any fd number).

    Raises TypeError/ValueError for objects select() would reject, so paho's error handling is unchanged.
    `xlist` (exceptional conditions) is never used by paho and is reported empty.
    """
    poller = _select.poll()  # looked up now: gevent's cooperative poll once monkey-patched
    by_fd: dict[int, tuple[list[Any], list[Any]]] = {}
    for obj in rlist:
        by_fd.setdefault(_fileno(obj), ([], []))[0].append(obj)
    for obj in wlist:
        by_fd.setdefault(_fileno(obj), ([], []))[1].append(obj)
    for fd, (readers, writers) in by_fd.items():
        mask = (_select.POLLIN if readers else 0) | (_select.POLLOUT if writers else 0)
        poller.register(fd, mask)
    if timeout is None:
        ms: int | None = None
    elif timeout < 0:
        raise ValueError("timeout must be non-negative")
    else:
        # Round up: a 0.4 ms timeout must not become a busy 0 ms loop; poll() wants whole milliseconds.
        ms = int(timeout * 1000.0) + (0 if (timeout * 1000.0).is_integer() else 1)
    ready_r: list[Any] = []
    ready_w: list[Any] = []
    for fd, events in poller.poll(ms):
        readers, writers = by_fd.get(fd, ([], []))
        if events & _READ_EVENTS:
            ready_r.extend(readers)
        if events & _WRITE_EVENTS:
            ready_w.extend(writers)
    return ready_r, ready_w, []


class _PollSelectModule:
    """Stands in for the `select` module inside paho.mqtt.client: `select()` is `poll_select`, every other
    attribute is the real module's."""

    select = staticmethod(poll_select)

    def __getattr__(self, name: str) -> Any:
        return getattr(_select, name)


_install_lock = threading.Lock()


def install_poll_select() -> bool:
    """Make paho's network loop wait with poll() instead of select(). Idempotent; True if it changed anything.
    Process-wide for paho (the lean transport drives paho with its own watchers and is unaffected)."""
    import paho.mqtt.client as paho_client

    with _install_lock:
        module: Any = paho_client
        if isinstance(module.select, _PollSelectModule):
            return False
        module.select = _PollSelectModule()
        return True


# --------------------------------------------------------------------------------------------- ack tracking

_NO_CALLBACK: AckCallback = lambda _at, _err: None  # noqa: E731  (a marker for the SDK's own publishes)


class AckTracker:
    """Maps paho message ids to the AckCallback of the publish that produced them.

    `expect(cb)` arms a one-shot slot for the calling thread/greenlet; the next `publish` this caller makes
    through the wrapped client (the SDK's `send`/`send_aggregate` make exactly one) takes it. Publishes the
    SDK makes on its own (handshake, property resend, from the loop thread) find no slot and are tracked with
    a no-op callback. The ack may be processed by the loop thread before `publish()` returns the mid to us
    (QoS 0 acks on socket write, inside `publish`), so early acks are parked in `_early` until the wrapper
    claims them.
    Lock order: paho holds its `_out_message_mutex` while calling on_publish, which takes `_lock`; the wrapper
    takes `_lock` only after paho's publish returned -- never the reverse, so no deadlock.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._lock = threading.Lock()
        self._slots: dict[int, AckCallback] = {}
        self._pending: dict[int, AckCallback] = {}
        self._early: dict[int, float] = {}
        self.acked = 0  # acks delivered to a caller's callback (for tests and health counters)

    def expect(self, on_ack: AckCallback | None) -> None:
        """Arm the calling thread's slot (None disarms)."""
        ident = threading.get_ident()  # greenlet id once gevent has patched threading
        if on_ack is None:
            self._slots.pop(ident, None)
        else:
            self._slots[ident] = on_ack

    def disarm(self) -> None:
        self._slots.pop(threading.get_ident(), None)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for cb in self._pending.values() if cb is not _NO_CALLBACK)

    def attach(self, client: Any) -> None:
        """Wrap `client.publish` and set `client.on_publish` (v1 callback API, as the SDK's client uses)."""
        real_publish = client.publish
        tracker = self

        def publish(topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                    properties: Any = None) -> Any:
            on_ack = tracker._slots.pop(threading.get_ident(), None) or _NO_CALLBACK
            info = real_publish(topic, payload, qos, retain, properties)
            tracker._record(info, qos, on_ack)
            return info

        client.publish = publish
        client.on_publish = lambda _client, _userdata, mid: self._acked(mid)

    def _record(self, info: Any, qos: int, on_ack: AckCallback) -> None:
        rc = info.rc
        if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # paho refused to queue it; it never leaves
            on_ack(self._now(), "queue_full")
            return
        # Not connected: QoS 0 is dropped; QoS 1/2 stay queued in paho and are sent on (re)connect.
        if rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
            on_ack(self._now(), "disconnected")
            return
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = on_ack
        if early is not None and on_ack is not _NO_CALLBACK:
            self.acked += 1
            on_ack(early, None)

    def _acked(self, mid: int) -> None:
        now = self._now()
        with self._lock:
            on_ack = self._pending.pop(mid, None)
            if on_ack is None:
                self._early[mid] = now
                return
        if on_ack is not _NO_CALLBACK:
            self.acked += 1
            on_ack(now, None)

    def fail_all(self, reason: str) -> int:
        """Report every unacked publish as failed (the session is gone for good). Returns how many."""
        with self._lock:
            waiting = [cb for cb in self._pending.values() if cb is not _NO_CALLBACK]
            self._pending.clear()
            self._early.clear()
        now = self._now()
        for cb in waiting:
            cb(now, reason)
        return len(waiting)


# ------------------------------------------------------------------------------------ pairing API shim


@dataclass
class PairingCalls:
    """Pairing API calls made by one caller inside `pairing_calls()`: (kind, start_monotonic, seconds)."""

    calls: list[tuple[str, float, float]] = field(default_factory=list)

    def total(self, kind: str) -> float | None:
        spans = [d for k, _s, d in self.calls if k == kind]
        return sum(spans) if spans else None

    def start_of(self, kind: str) -> float | None:
        return next((s for k, s, _d in self.calls if k == kind), None)


_recorders: dict[int, PairingCalls] = {}
_pairing_cas: dict[str, str] = {}  # pairing base URL -> CA bundle path
_counts: dict[str, int] = {}  # process-wide count of Pairing API calls per kind (tests, health)


def _kind_of(method: str, url: str) -> str:
    # URL shapes from docs/protocol.md section 2 (astarte_pairing); order matters: .../credentials/verify first.
    if url.endswith("/credentials/verify"):
        return "verify"
    if url.endswith("/credentials"):
        return "certificate"
    if "/agent/devices" in url:
        return "registration"
    return "pairing_info" if method == "GET" else "other"


class _RequestsProxy:
    """Stands in for `requests` inside astarte.device.pairing_handler (which calls only get/post)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.retry_sleep: Callable[[float], None] = time.sleep  # a greenlet switch under gevent; tests record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        if kwargs.get("verify") is True:
            for base, ca in _pairing_cas.items():
                if url.startswith(base):
                    kwargs["verify"] = ca
                    break
        kind = _kind_of(method, url)
        start = time.monotonic()
        try:
            # The same retries as the lean transport's pairing client (429, 5xx, connection errors).
            return send_with_retries(kind, lambda: self._real.request(method, url, **kwargs),
                                     sleep=self.retry_sleep)
        finally:
            spent = time.monotonic() - start
            _counts[kind] = _counts.get(kind, 0) + 1
            rec = _recorders.get(threading.get_ident())
            if rec is not None:
                rec.calls.append((kind, start, spent))

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._call("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._call("POST", url, **kwargs)


def install_pairing_shim() -> None:
    """Idempotent. Affects only the SDK's pairing_handler module's view of `requests`."""
    from astarte.device import pairing_handler

    with _install_lock:
        if not isinstance(pairing_handler.requests, _RequestsProxy):
            pairing_handler.requests = _RequestsProxy(pairing_handler.requests)


def register_pairing_ca(pairing_base_url: str, ca_file: str) -> None:
    """Verify HTTPS to this Pairing API with `ca_file` instead of the system store."""
    install_pairing_shim()
    _pairing_cas[pairing_base_url.rstrip("/")] = ca_file


def pairing_call_counts() -> dict[str, int]:
    return dict(_counts)


@contextmanager
def pairing_calls() -> Iterator[PairingCalls]:
    """Record the Pairing API calls the calling thread/greenlet makes inside the block."""
    install_pairing_shim()
    ident = threading.get_ident()
    rec = PairingCalls()
    _recorders[ident] = rec
    try:
        yield rec
    finally:
        _recorders.pop(ident, None)


