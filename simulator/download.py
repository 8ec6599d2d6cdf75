"""The seam between a device and a real image download (`download: fetch`): a protocol and its outcome.

The device side (simulator.device_fetch) is pure; `simulator.transports.http_download.HttpDownloader` does the
I/O (gevent, streaming, bounded memory). Tests can plug any object with the same `start`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DoneCallback", "DownloadHandle", "DownloadOutcome", "Downloader", "ProgressCallback"]


@dataclass(frozen=True)
class DownloadOutcome:
    """One attempt's end. `error` is "" when every announced byte arrived (whatever the HTTP status)."""

    status: int  # HTTP status, 0 when there was no response
    received: int  # body bytes read
    total: int  # Content-Length (0: none announced)
    seconds: float  # request sent -> last byte (or the failure)
    error: str = ""  # "connect: ...", "no_content_length", "short_read", "read: ..."

    @property
    def ok(self) -> bool:
        return not self.error


ProgressCallback = Callable[[int, int], None]  # (bytes received so far, Content-Length)
DoneCallback = Callable[[DownloadOutcome], None]


class DownloadHandle(Protocol):
    def cancel(self) -> None: ...


class Downloader(Protocol):
    def start(self, url: str, ota_id: str, on_progress: ProgressCallback, on_done: DoneCallback,
              delay_s: float = 0.0) -> DownloadHandle:
        """GET `url` (header x-edgehog-ota-id: ota_id) after `delay_s`; callbacks on the device's loop."""
        ...
