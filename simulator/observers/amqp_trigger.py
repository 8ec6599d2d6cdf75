"""Observer for a real Astarte: the SimpleEvents an AMQP trigger action publishes (docs/protocol.md section 3).

Astarte publishes each event of an `amqp_exchange` trigger action to the exchange
`astarte_events_<realm>_<suffix>` (vhost `/_<realm>` since Astarte 1.3; doc 060-triggers.md "AMQP 0-9-1
Actions") with the action's `amqp_routing_key` and the headers `x_astarte_realm`, `x_astarte_device_id`,
`x_astarte_event_type`; the body is a protobuf SimpleEvent (simulator.observers.simple_event). This observer
binds a queue to that exchange with the routing key and turns each OTAEvent into an ArrivalRecord stamped at
reception (the lowest-overhead way to see arrivals; AppEngine polling adds a hop and loses reception time).

The exchange is declared passively: Astarte creates it when the trigger is installed (trigger propagation can
take up to 10 minutes), and redeclaring it with other arguments would close the channel. A queue name given
in the target file is declared non-exclusive and auto-deleted when this consumer goes; none => a server-named
exclusive queue. pika is not thread-safe, so every call on the connection happens on the consumer thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from simulator.clock import Clock, MonotonicClock
from simulator.errors import UsageError
from simulator.observers.fence import RunFence
from simulator.observers.simple_event import decode_bson_value, decode_simple_event
from simulator.observers.trigger_arrivals import ArrivalBook
from simulator.records import ArrivalRecord

__all__ = ["AmqpTriggerObserver"]

log = logging.getLogger("fleetsim.observer.amqp")

CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.2  # how often the consumer thread checks for stop (pika process_data_events time limit)
_DATA_EVENTS = ("incoming_data_event", "value_stored_event")


class AmqpTriggerObserver:
    name = "amqp-trigger"

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        queue: str = "",
        routing_key: str = "fleetsim",
        prefetch: int = 1000,
        realm: str = "",
        clock: Clock | None = None,
        early_t_margin_s: float = 5.0,
    ) -> None:
        self.url, self.exchange, self.queue, self.routing_key = url, exchange, queue, routing_key
        self.prefetch, self.realm = prefetch, realm
        self._clock: Clock = clock or MonotonicClock()
        self.book = ArrivalBook()
        # How much earlier than the run's mark a device's `t` may be and still be this run's: negative
        # clock_skew faults plus host clocks that disagree by a few seconds (simulator.observers.fence).
        self.early_t_margin_s = early_t_margin_s
        self._fence: RunFence | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error = ""
        self._thread: threading.Thread | None = None

    # -- Observer protocol -------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, bind, start consuming; one clear UsageError when the broker or exchange is not there."""
        self._thread = threading.Thread(target=self._run, name="fleetsim-amqp-observer", daemon=True)
        self._thread.start()
        if not self._ready.wait(CONNECT_TIMEOUT_S) or self._error:
            self.stop()
            raise UsageError(
                f"AMQP observer: {self._error or f'no connection within {CONNECT_TIMEOUT_S:.0f} s'}"
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CONNECT_TIMEOUT_S)
            self._thread = None

    @property
    def fence(self) -> RunFence | None:
        return self._fence

    def _take_mark(self, purged: int = 0) -> None:
        at = self._clock.wall()
        self.book.fence(round((at - self.early_t_margin_s) * 1000))
        self._fence = RunFence(at=at, ignored_before=purged, kind="trigger mark")

    def arrival_count(self) -> int:
        return self.book.count()

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        return self.book.records(since)

    def release(self, upto: int) -> None:
        """Forget arrivals before number `upto` (a master that forwarded them to its workers: ArrivalBook)."""
        self.book.release(upto)

    # -- consumer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        import pika
        import pika.exceptions

        connection: Any = None
        try:
            params = pika.URLParameters(self.url)
            params.socket_timeout = CONNECT_TIMEOUT_S
            params.blocked_connection_timeout = CONNECT_TIMEOUT_S
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            try:
                channel.exchange_declare(self.exchange, passive=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise RuntimeError(
                    f"exchange {self.exchange!r} not found on {_safe(self.url)} ({exc.reply_text}); "
                    "install the trigger first: fleetsim triggers --install"
                ) from None
            if self.queue:
                declared = channel.queue_declare(self.queue, auto_delete=True)
            else:
                declared = channel.queue_declare("", exclusive=True, auto_delete=True)
            queue = declared.method.queue
            channel.queue_bind(queue, self.exchange, routing_key=self.routing_key)
            # The run fence: what a named queue already holds is an earlier run's (counted, never joined).
            purged = int(channel.queue_purge(queue).method.message_count or 0) if self.queue else 0
            self.book.ignore_many("before_run", purged)
            self._take_mark(purged)
            channel.basic_qos(prefetch_count=self.prefetch)
            channel.basic_consume(queue, self._on_message, auto_ack=True)
            self._ready.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=POLL_S)
        except Exception as exc:  # any failure is the observer's, reported once in start() or in the log
            self._error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._ready.is_set():
                log.warning("AMQP observer stopped: %s", self._error)
            self._ready.set()
        finally:
            if connection is not None and connection.is_open:
                with contextlib.suppress(Exception):  # closing a broken connection: nothing more to do
                    connection.close()

    def _on_message(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        arrival = self._clock.wall()  # first: latency is measured to this instant
        self.handle(body, dict(getattr(properties, "headers", None) or {}), arrival)

    def handle(self, body: bytes, headers: dict[str, Any], arrival: float) -> ArrivalRecord | None:
        """Turn one delivered message into an arrival (public so a test can feed it without a broker)."""
        realm = _header(headers, "x_astarte_realm")
        if self.realm and realm and realm != self.realm:
            self.book.ignore("other_realm")
            return None
        try:
            event = decode_simple_event(body)
        except (ValueError, UnicodeDecodeError):
            self.book.ignore("not_a_simple_event")
            return None
        event_type = _header(headers, "x_astarte_event_type") or event.event_type
        if event_type not in _DATA_EVENTS:
            self.book.ignore(f"event_type:{event_type or 'unknown'}")
            return None
        try:
            value, bson_t = decode_bson_value(event.bson_value)
        except ValueError:
            self.book.ignore("bad_bson_value")
            return None
        device = event.device_id or _header(headers, "x_astarte_device_id")
        t_ms = event.timestamp_ms if event.timestamp_ms is not None else bson_t
        return self.book.add(
            device_id=device,
            interface=event.interface,
            path=event.path,
            value=value,
            t_ms=t_ms,
            arrival=arrival,
        )


def _header(headers: dict[str, Any], name: str) -> str:
    value = headers.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe(url: str) -> str:
    """The URL without its password (errors end up in logs and CI output)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
