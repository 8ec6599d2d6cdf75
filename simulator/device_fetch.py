"""One backend-driven device's real download (`download: fetch`): turns transfer callbacks into machine inputs.

The device (simulator.device) hands over the OTARequest's url and uuid and the inputs that follow a complete
download (simulator.lifecycle.fetch_plan); this pushes, on the device's own queue at the time things happen:
DownloadProgress as bytes arrive (one input per new percent), then DownloadDone and the rest of the operation;
on a failed attempt DownloadAttemptFailed(NetworkError) and BackoffElapsed 2^i device seconds later, with the
next attempt started then (after the 5th the machine ends the operation: Failure/InternalError); a complete
body with a non-2xx status is rejected as the runtime's bundle check would (Failure/InvalidBaseImage).
Callbacks of an aborted or superseded download are ignored (a generation counter). No I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.download import Downloader, DownloadHandle, DownloadOutcome
from simulator.events import OtaStatusCode
from simulator.lifecycle.fetch_plan import backoff_us, percent_of
from simulator.lifecycle.inputs import (
    BackoffElapsed,
    DeployFailed,
    DownloadAttemptFailed,
    DownloadDone,
    DownloadProgress,
    Input,
)
from simulator.lifecycle.states import MAX_DOWNLOAD_ATTEMPTS
from simulator.metrics.campaign import ResponderLog

__all__ = ["FetchSession"]

Push = Callable[[int, Input], None]  # (offset µs from the run's start, input)


class FetchSession:
    def __init__(self, downloader: Downloader, push: Push, now_us: Callable[[], int], time_scale: float,
                 log: ResponderLog | None, wall_now: Callable[[], float]) -> None:
        self._downloader, self._push, self._now_us, self._wall_now = downloader, push, now_us, wall_now
        self._time_scale, self._log = time_scale, log
        self._generation = 0
        self._handle: DownloadHandle | None = None
        self._uuid = self._url = ""
        self._after: tuple[tuple[int, Input], ...] = ()
        self._attempt = 0
        self._percent = -1

    def begin(self, uuid: str, url: str, after: tuple[tuple[int, Input], ...]) -> None:
        self.abort()
        self._uuid, self._url, self._after, self._attempt = uuid, url, after, 0
        self._start(0.0)

    def abort(self) -> None:
        self._generation += 1
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _start(self, delay_s: float) -> None:
        generation = self._generation
        self._percent = -1
        self._handle = self._downloader.start(
            self._url, self._uuid, lambda received, total: self._progress(generation, received, total),
            lambda outcome: self._done(generation, outcome), delay_s)

    def _progress(self, generation: int, received: int, total: int) -> None:
        percent = percent_of(received, total)
        if generation == self._generation and percent != self._percent:
            self._percent = percent
            self._push(self._now_us(), DownloadProgress(percent))

    def _done(self, generation: int, outcome: DownloadOutcome) -> None:
        if generation != self._generation:
            return
        self._handle = None
        now = self._now_us()
        if self._log is not None:
            self._log.download(self._uuid, outcome, self._wall_now())
        if outcome.ok and 200 <= outcome.status < 300:
            self._push(now, DownloadDone())
            for offset, inp in self._after:
                self._push(now + offset, inp)
        elif outcome.ok:  # saved, then refused by the bundle check (the runtime does not look at the status)
            self._push(now, DeployFailed(OtaStatusCode.INVALID_BASE_IMAGE,
                                         f"Unable to get info from ota_file (HTTP {outcome.status})"))
        else:
            self._attempt += 1
            wait = backoff_us(self._attempt, self._time_scale)
            self._push(now, DownloadAttemptFailed(OtaStatusCode.NETWORK_ERROR, "Error downloading update"))
            self._push(now + wait, BackoffElapsed())
            if self._attempt < MAX_DOWNLOAD_ATTEMPTS:
                self._start(wait / 1e6)
