"""Real image downloads for `download: fetch`, like edgehog-device-runtime's `wget` (src/ota/mod.rs).

GET with the `x-edgehog-ota-id: <uuid>` header; a response without a (non-zero) Content-Length is an error
before any byte is read ("Unable to get content length"); the body is streamed in 64 KiB reads and counted,
never kept (bounded memory: the runtime writes it to a file; a load generator has no use for the bytes); fewer
bytes than announced is an error. The HTTP status is not checked, as in the runtime (a 404 page "downloads" and
the bundle check rejects it). One greenlet per download, on the fleet's gevent loop; `cancel()` kills it.
"""

from __future__ import annotations

import http.client
import ssl
from typing import Any
from urllib.parse import urlsplit

import gevent

from simulator.clock import Clock, MonotonicClock
from simulator.download import DoneCallback, DownloadOutcome, ProgressCallback

__all__ = ["CHUNK_BYTES", "HttpDownloader"]

CHUNK_BYTES = 64 * 1024
TIMEOUT_S = 30.0  # per socket operation (connect, each read)


class _Handle:
    def __init__(self, greenlet: Any) -> None:
        self._greenlet = greenlet

    def cancel(self) -> None:
        self._greenlet.kill(block=False)


class HttpDownloader:
    def __init__(self, clock: Clock | None = None, ca_file: str | None = None) -> None:
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self._context = ssl.create_default_context(cafile=ca_file)

    def start(self, url: str, ota_id: str, on_progress: ProgressCallback, on_done: DoneCallback,
              delay_s: float = 0.0) -> _Handle:
        return _Handle(gevent.spawn(self._run, url, ota_id, on_progress, on_done, delay_s))

    def _run(self, url: str, ota_id: str, on_progress: ProgressCallback, on_done: DoneCallback,
             delay_s: float) -> None:
        if delay_s > 0:
            gevent.sleep(delay_s)  # the runtime's retry backoff, on the loop's timer
        on_done(self.fetch(url, ota_id, on_progress))

    def fetch(self, url: str, ota_id: str, on_progress: ProgressCallback) -> DownloadOutcome:
        started = self.clock.monotonic()
        parts = urlsplit(url)
        conn: http.client.HTTPConnection
        try:
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=TIMEOUT_S,
                                                   context=self._context)
            elif parts.scheme == "http":
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT_S)
            else:
                return DownloadOutcome(0, 0, 0, 0.0, f"connect: unsupported URL scheme {parts.scheme!r}")
        except ValueError as exc:  # a bad port in the URL
            return DownloadOutcome(0, 0, 0, 0.0, f"connect: {exc}")
        status = received = total = 0
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers={"x-edgehog-ota-id": ota_id})
            response = conn.getresponse()
            status = response.status
            length = response.getheader("Content-Length")
            total = int(length) if length and length.isdigit() else 0
            if total == 0:
                return DownloadOutcome(status, 0, 0, self.clock.monotonic() - started, "no_content_length")
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                received += len(chunk)
                on_progress(received, total)
            error = "" if received == total else "short_read"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{'read' if status else 'connect'}: {type(exc).__name__}: {exc}"
        finally:
            conn.close()
        return DownloadOutcome(status, received, total, self.clock.monotonic() - started, error)
