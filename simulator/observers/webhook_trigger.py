"""Observer for a real Astarte: an HTTP receiver for a trigger's `http_url` action (docs/protocol.md section 3).

Astarte POSTs one JSON document per event (astarte doc 060-triggers.md "SimpleEvent payloads"):
`{"timestamp": "<ISO 8601 UTC>", "device_id": ..., "trigger_name": ..., "event": {"type": "incoming_data",
"interface": ..., "path": "/event", "value": {...}}}` with the realm in the `Astarte-Realm` header. For
OTAEvent
(explicit_timestamp) `timestamp` is the device's `t`, so arrival - timestamp is the end-to-end latency.
Edgehog itself installs such a trigger (`on: incoming_data`, `match_path: /*`). Each request is stamped at
reception (before the body is parsed) and answered 200 at once: a slow answer would back Astarte's trigger
delivery up and show as latency. `value_stored` events (after the database write) are accepted too.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulator.clock import Clock, MonotonicClock
from simulator.errors import UsageError
from simulator.observers.fence import RunFence
from simulator.observers.trigger_arrivals import ArrivalBook
from simulator.records import ArrivalRecord

__all__ = ["WebhookObserver", "parse_trigger_timestamp"]

log = logging.getLogger("fleetsim.observer.webhook")

MAX_BODY = 1 << 20  # bytes: an OTAEvent trigger body is ~400 B; anything this big is not one
_DATA_TYPES = ("incoming_data", "value_stored")


def parse_trigger_timestamp(value: object) -> int | None:
    """Epoch ms of a trigger's ISO 8601 timestamp ("2019-10-16T08:56:08.534377Z"); None if unparseable."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return round(when.timestamp() * 1000)


class WebhookObserver:
    name = "webhook-trigger"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8090,
        path: str = "/fleetsim/events",
        realm: str = "",
        clock: Clock | None = None,
        early_t_margin_s: float = 5.0,
    ) -> None:
        self.host, self.port, self.path, self.realm = host, port, path, realm
        self._clock: Clock = clock or MonotonicClock()
        self.book = ArrivalBook()
        # How much earlier than the run's mark a device's `t` may be and still be this run's: negative
        # clock_skew faults plus host clocks that disagree by a few seconds (simulator.observers.fence).
        self.early_t_margin_s = early_t_margin_s
        self._fence: RunFence | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen on host:port (port 0: any free port; `self.port` then holds the one chosen)."""
        observer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: Astarte's HTTP client reuses connections

            def do_POST(self) -> None:
                arrival = observer._clock.wall()  # first: latency is measured to this instant
                status = observer._handle_request(self, arrival)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None  # one line per event would flood the terminal

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise UsageError(
                f"webhook observer: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._take_mark()  # the run fence: a retried delivery of an earlier run's event is `before_run`
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="fleetsim-webhook-observer",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    # -- one request ---------------------------------------------------------------------------------------

    def _handle_request(self, request: BaseHTTPRequestHandler, arrival: float) -> int:
        if request.path.split("?", 1)[0] != self.path:
            self.book.ignore("wrong_path")
            return 404
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self.book.ignore("bad_length")
            return 400
        body = request.rfile.read(length)
        realm = request.headers.get("Astarte-Realm", "")
        if self.realm and realm and realm != self.realm:
            self.book.ignore("other_realm")
            return 200  # not ours, but delivered: Astarte must not retry it
        self.handle(body, arrival)
        return 200

    def handle(self, body: bytes, arrival: float) -> ArrivalRecord | None:
        """One trigger body -> an arrival (public so a test can feed it without HTTP)."""
        try:
            doc = json.loads(body)
        except ValueError:
            self.book.ignore("not_json")
            return None
        event = doc.get("event") if isinstance(doc, dict) else None
        if not isinstance(event, dict) or event.get("type") not in _DATA_TYPES:
            self.book.ignore("not_a_data_event")
            return None
        device = doc.get("device_id")
        if not isinstance(device, str):
            self.book.ignore("no_device_id")
            return None
        t_ms = parse_trigger_timestamp(doc.get("timestamp"))
        return self.book.add(
            device_id=device,
            interface=str(event.get("interface", "")),
            path=str(event.get("path", "")),
            value=event.get("value"),
            t_ms=t_ms,
            arrival=arrival,
        )
