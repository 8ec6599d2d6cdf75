"""A backend-driven operation whose download is real (`download: fetch`): the drawn inputs, split around it.

The draw still decides everything after the download (deploy time, outcome, reboot); the download itself —
its duration, progress and failures — comes from the HTTP transfer (simulator.transports.http_download), as in
edgehog-device-runtime's `wget` (src/ota/mod.rs): Downloading progress on every rise of >= 10 points and at
100 %, a failed attempt -> Error (NetworkError) and a retry after 2^i s (i = 1..5), then Failure
(InternalError, "Too many attempts"). A response the runtime would save but cannot install (HTTP status not 2xx:
`wget` does not check it, the bundle check after the download then fails) -> Failure/InvalidBaseImage. Pure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from simulator.lifecycle.draws import OperationDraw, operation_inputs
from simulator.lifecycle.inputs import (
    BackoffElapsed,
    DownloadAttemptFailed,
    DownloadDone,
    DownloadProgress,
    Input,
    StartUpdate,
)

__all__ = ["FetchPlan", "backoff_us", "fetch_plan", "percent_of"]

_DOWNLOAD = (DownloadProgress, DownloadAttemptFailed, BackoffElapsed, DownloadDone)


@dataclass(frozen=True)
class FetchPlan:
    before: tuple[tuple[int, Input], ...]  # absolute offsets (µs): up to and including StartUpdate
    after: tuple[tuple[int, Input], ...]  # offsets relative to the download's end (µs), DownloadDone excluded


def fetch_plan(draw: OperationDraw, uuid: str, start_us: int, time_scale: float) -> FetchPlan:
    """Split the drawn inputs: the download ones are dropped (the transfer replaces them)."""
    # The drawn download outcome does not apply (the real transfer decides); what follows it does.
    outcome = "success" if draw.outcome == "download_exhausted" else draw.outcome
    real = dataclasses.replace(draw, outcome=outcome, failed_attempts=())
    inputs = operation_inputs(real, uuid, start_us, time_scale, live=True)
    kinds = [type(inp) for _, inp in inputs]
    start = kinds.index(StartUpdate) + 1
    done = kinds.index(DownloadDone)
    end_us = inputs[done][0]
    after = tuple((offset - end_us, inp) for offset, inp in inputs[done + 1:] if not isinstance(inp, _DOWNLOAD))
    return FetchPlan(before=tuple(inputs[:start]), after=after)


def backoff_us(attempt: int, time_scale: float) -> int:
    """`retry_download`: 2^attempt device seconds after failed attempt `attempt` (1-based), on the wall clock."""
    return round(2.0**attempt * 1e6 / time_scale)


def percent_of(received: int, total: int) -> int:
    """The runtime's `(downloaded / total_size) * 100.0 as i32` (truncated)."""
    return min(100, int(received * 100 / total)) if total > 0 else 0
