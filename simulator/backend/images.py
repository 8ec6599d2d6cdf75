"""The embedded backend's image server: OTA images for `download: fetch`, configurable per request (HTTP).

`GET /<name>?size=10MiB&rate=2MiB&chunked=0&fail=0.1&fail_at=0.5&status=200&seed=1` streams `size` bytes of a
repeated 64 KiB pattern (bounded memory whatever the size):
- `rate`: throttle, bytes per second per connection (0 = as fast as the socket takes them);
- `chunked=1`: Transfer-Encoding chunked, no Content-Length (edgehog-device-runtime's wget refuses a
  response without a length: NetworkError);
- `fail`: probability that a response is cut off (connection closed) after `fail_at` of the body, drawn from a
  seeded stream (`seed`) in request order: a mid-download network failure;
- `status`: answer with this HTTP status (and a small body) instead, e.g. 503.
Sizes take B, KB, MB, KiB, MiB, GiB suffixes. Every request's `x-edgehog-ota-id` header is counted
(`GET /stats`: requests, bytes sent, cut-offs, requests per OTA id) so tests can check what devices sent.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ImageServer", "parse_size"]

BLOCK = bytes(range(256)) * 256  # 64 KiB written again and again
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """'10MiB' -> 10485760; ValueError on anything else."""
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 512KiB, 10MB, 1048576)")
    return int(float(match.group(1)) * _UNITS[unit])


class ImageServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._streams: dict[int, random.Random] = {}
        self.requests = 0
        self.bytes_sent = 0
        self.cut_offs = 0
        self.by_ota_id: Counter[str] = Counter()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://127.0.0.1:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fleetsim-images", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: only once it runs
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "bytes_sent": self.bytes_sent, "cut_offs": self.cut_offs,
                    "by_ota_id": dict(self.by_ota_id)}

    def _cut(self, seed: int, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            stream = self._streams.setdefault(seed, random.Random(seed))
            return stream.random() < probability

    def _count(self, ota_id: str, cut: bool) -> None:
        with self._lock:
            self.requests += 1
            self.cut_offs += int(cut)
            self.by_ota_id[ota_id] += 1

    def _sent(self, n: int) -> None:
        with self._lock:  # counted before the bytes leave: a client that has them sees them counted
            self.bytes_sent += n

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/stats":
                    self._reply(200, json.dumps(server.stats()).encode(), "application/json")
                    return
                try:
                    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                    size = parse_size(q.get("size", "1MiB"))
                    rate = parse_size(q.get("rate", "0"))
                    fail, fail_at = float(q.get("fail", "0")), float(q.get("fail_at", "0.5"))
                    status, seed = int(q.get("status", "200")), int(q.get("seed", "0"))
                    chunked = q.get("chunked", "0") in ("1", "true", "yes")
                except ValueError as exc:
                    self._reply(400, f"bad image parameters: {exc}\n".encode(), "text/plain")
                    return
                ota_id = self.headers.get("x-edgehog-ota-id", "")
                if status != 200:
                    server._count(ota_id, False)
                    self._reply(status, f"image server: status {status} as asked\n".encode(), "text/plain")
                    return
                cut = server._cut(seed, fail)
                server._count(ota_id, cut)
                limit = int(size * fail_at) if cut else size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(size))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self._stream(limit, rate, chunked) == limit and chunked and not cut:
                    try:
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:  # the client went away (the runtime refuses a body without a length)
                        self.close_connection = True
                if cut:
                    self.close_connection = True

            def _stream(self, limit: int, rate: int, chunked: bool) -> int:
                sent, started = 0, time.monotonic()
                try:
                    while sent < limit:
                        block = BLOCK[: min(len(BLOCK), limit - sent)]
                        if rate > 0:  # throttle: byte n leaves no earlier than n / rate after the start
                            ahead = (sent + len(block)) / rate - (time.monotonic() - started)
                            if ahead > 0:
                                time.sleep(ahead)  # sleep-ok: the throttle is the point
                        server._sent(len(block))
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                        sent += len(block)
                except OSError:  # the client went away (a canceled download): nothing to send it
                    self.close_connection = True
                    return -1
                return sent

            def _reply(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
