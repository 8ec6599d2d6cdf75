"""Seeded random draws of one OTA operation, and the timed machine inputs they imply.

`draw_operation(spec, rng)` takes every random decision of one operation from the device's own numpy Generator
(always the same number of draws, in the same order, whatever the outcome, so one operation's draws never
shift the next one's). `operation_inputs(draw, uuid, start_us, time_scale)` lays the machine inputs out in
time. Durations are seconds of *device* time; offsets are integer microseconds of wall time
(device seconds / time_scale). Timings follow edgehog-device-runtime src/ota/mod.rs: `retry_download` sleeps
2^i s (i = 1..5) after each failed attempt, `reboot` publishes Rebooting right before the reboot command.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from simulator.events import OtaStatusCode
from simulator.ids import request_uuid
from simulator.lifecycle.inputs import (
    BackoffElapsed,
    BootedNew,
    BootedOld,
    CancelRequested,
    DeployDone,
    DeployFailed,
    DeployProgress,
    DownloadAttemptFailed,
    DownloadDone,
    DownloadProgress,
    Input,
    PersistFailed,
    PoweredOff,
    RebootFailed,
    RebootStarted,
    RebootTick,
    StartUpdate,
    UpdateRequested,
)
from simulator.lifecycle.states import MAX_DOWNLOAD_ATTEMPTS, REBOOT_TICK_S
from simulator.scenario.model import NO_SHUTDOWN_DELAY, Distribution, RandomLifecycle

__all__ = ["OUTCOMES", "OperationDraw", "draw_operation", "failed_attempts", "operation_inputs", "request_uuid",
           "sample", "sample_at"]

# RandomLifecycle.outcomes keys (scenario/model.py docstring).
OUTCOMES = ("success", "download_exhausted", "invalid_base_image", "io_error", "reboot_failure", "rollback",
            "cancel", "late_cancel")


def sample(dist: Distribution, rng: np.random.Generator) -> float:
    """One duration in seconds (>= 0). Exactly one draw from `rng` for every kind, so streams stay aligned."""
    return sample_at(dist, float(rng.random()))


def sample_at(dist: Distribution, u: float) -> float:
    """The duration `sample` gives when its one draw from the stream is `u` (in [0, 1))."""
    if dist.kind == "fixed":
        return max(0.0, dist.value)
    if dist.kind == "uniform":
        return max(0.0, dist.low + (dist.high - dist.low) * u)
    if dist.kind == "lognormal":
        # Inverse-CDF of a lognormal with the given median and sigma (u clipped away from 0 and 1).
        from statistics import NormalDist

        z = NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        return float(dist.median * np.exp(dist.sigma * z))
    if dist.kind == "exponential":
        return float(-dist.mean * np.log1p(-u))
    raise ValueError(f"unknown distribution kind {dist.kind!r}")


def _weighted(pairs: tuple[tuple[str, float], ...], u: float) -> str:
    total = sum(w for _, w in pairs)
    acc = 0.0
    for name, weight in pairs:
        acc += weight / total
        if u < acc:
            return name
    return pairs[-1][0]


@dataclass(frozen=True)
class OperationDraw:
    """Every random decision of one operation (device-time seconds; fractions in [0, 1))."""

    outcome: str
    streaming: bool
    progress_step: int
    ack_delay: float
    download: float  # duration of one complete download attempt
    deploy: float
    reboot: float  # offline time
    failed_attempts: tuple[tuple[float, str], ...]  # (fraction downloaded when it failed, status code)
    fail_fraction: float  # invalid_base_image: fraction of the deploy done when the install fails
    cancel_fraction: float  # cancel: of the cancellable window; late_cancel: of the deploy
    second_uuid: str | None  # a second Update with another uuid (double_update_probability)
    second_fraction: float  # where it lands within the time the device is up
    shutdown: float = 0.0  # Rebooting -> machine down (RandomLifecycle.shutdown_delay)


# The doubles every operation draws before its second uuid, in this order: the outcome, the acknowledge,
# download, deploy and reboot durations, (fraction, code) of each download attempt, the fail fraction, the
# cancel fraction, the double-update draw and where the second Update lands.
_DOUBLES = 1 + 4 + 2 * MAX_DOWNLOAD_ATTEMPTS + 4


def failed_attempts(spec: RandomLifecycle, outcome: str, tries: list[tuple[float, float]],
                    ) -> tuple[list[tuple[float, str]], str]:
    """The failed download attempts (fraction downloaded, error code) from each attempt's two uniforms, and the
    outcome (a streamed install cannot exhaust its downloads: it fails as an invalid base image instead)."""
    failed: list[tuple[float, str]] = []
    if not spec.streaming:
        # Exhaustion: all 5 attempts fail, each after a uniform fraction of the download. Otherwise attempt i
        # fails when u < download_error_probability (then u / p is again uniform in [0, 1): the fraction),
        # at most MAX_DOWNLOAD_ATTEMPTS - 1 times (the last failure would be exhaustion).
        q = spec.download_error_probability
        for i, (u_fail, u_code) in enumerate(tries):
            if outcome == "download_exhausted":
                fraction = u_fail
            elif i < MAX_DOWNLOAD_ATTEMPTS - 1 and u_fail < q:
                fraction = u_fail / q
            else:
                break
            failed.append((fraction, _weighted(spec.error_codes, u_code)))
    elif outcome == "download_exhausted":
        outcome = "invalid_base_image"  # nothing is downloaded in streaming mode: the streamed install fails
    return failed, outcome


def draw_operation(spec: RandomLifecycle, rng: np.random.Generator) -> OperationDraw:
    """Draw one operation. Always _DOUBLES (19) doubles and 16 bytes, in this order (then the shutdown delay's
    double when the scenario sets one)."""
    # One call for the 19 doubles: numpy fills the array one double at a time from the same stream, so these
    # are the values 19 `rng.random()` calls returned, in the same order (tests/unit/lifecycle/test_draws_batch.py);
    # each call costs ~2.5 us under gevent's patch (the Generator's lock becomes a Python-level RLock), one
    # call of 19 ~4 us (python -m timeit, 2026-12-07, issue 16).
    u = rng.random(_DOUBLES).tolist()
    outcome = _weighted(spec.outcomes, u[0])
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    ack = sample_at(spec.acknowledge_delay, u[1])
    download = sample_at(spec.download_duration, u[2])
    deploy = sample_at(spec.deploy_duration, u[3])
    reboot = sample_at(spec.reboot_duration, u[4])
    tries = [(u[5 + 2 * i], u[6 + 2 * i]) for i in range(MAX_DOWNLOAD_ATTEMPTS)]
    fail_fraction, cancel_fraction, u_double, second_fraction = u[5 + 2 * MAX_DOWNLOAD_ATTEMPTS:]
    double = u_double < spec.double_update_probability
    second = request_uuid(rng)
    # Last, and only when the scenario sets it: the draws above (and every existing plan) stay as they were.
    shutdown = sample(spec.shutdown_delay, rng) if spec.shutdown_delay != NO_SHUTDOWN_DELAY else 0.0
    failed, outcome = failed_attempts(spec, outcome, tries)
    return OperationDraw(
        outcome=outcome, streaming=spec.streaming, progress_step=spec.progress_step, ack_delay=ack,
        download=download, deploy=deploy, reboot=reboot, failed_attempts=tuple(failed),
        fail_fraction=fail_fraction, cancel_fraction=cancel_fraction,
        second_uuid=second if double else None, second_fraction=second_fraction, shutdown=shutdown,
    )


def _points(step: int) -> list[int]:
    """Progress percentages reported by a transfer: every `step` points, then 100."""
    return [*range(step, 100, step), 100]


@cache
def _progress(step: int) -> tuple[tuple[float, DownloadProgress, DeployProgress], ...]:
    """(p / 100, DownloadProgress(p), DeployProgress(p)) for each p of `_points(step)`, built once per step: the
    inputs are frozen values, and an operation lays out ~22 of them (issue 16)."""
    return tuple((p / 100, DownloadProgress(p), DeployProgress(p)) for p in _points(step))


def operation_inputs(
    draw: OperationDraw, uuid: str, start_us: int, time_scale: float, live: bool = False
) -> list[tuple[int, Input]]:
    """The machine inputs of one operation, at wall offsets `start_us + device_seconds / time_scale` (µs).

    live=True (a backend-driven device, which received the Update already): no UpdateRequested and no
    simulated Cancel or second Update (those come from the backend); the acknowledge delay is not applied.
    """
    main: list[tuple[float, Input]] = []
    t = 0.0 if live else draw.ack_delay
    if not live:
        main.append((t, UpdateRequested(uuid)))
    main.append((t, StartUpdate()))
    ack = t
    points = _progress(draw.progress_step)
    if not draw.streaming:
        for i, (fraction, code) in enumerate(draw.failed_attempts, start=1):
            main += [(t + share * draw.download, progress) for share, progress, _ in points if share < fraction]
            t += fraction * draw.download
            main.append((t, DownloadAttemptFailed(OtaStatusCode(code))))
            t += 2.0**i  # retry_download: sleep 2^i s after attempt i
            main.append((t, BackoffElapsed()))
        if draw.outcome != "download_exhausted":
            main += [(t + share * draw.download, progress) for share, progress, _ in points]
            t += draw.download
            main.append((t, DownloadDone()))
    download_end = t
    if draw.outcome == "io_error":
        main.append((t, PersistFailed()))  # deploy() writes the pending state before installing
    elif draw.outcome == "invalid_base_image":
        f = draw.fail_fraction
        main += [(t + share * draw.deploy, progress) for share, _, progress in points if share < f]
        main.append((t + f * draw.deploy, DeployFailed(OtaStatusCode.INVALID_BASE_IMAGE)))
    elif draw.outcome != "download_exhausted":
        main += [(t + share * draw.deploy, progress) for share, _, progress in points]
        t += draw.deploy
        main += [(t, DeployDone()), (t, RebootStarted())]
        if draw.outcome == "reboot_failure":
            main.append((t, RebootFailed()))
        else:
            # mod.rs `wait_reboot`: Rebooting again every 30 s while the machine is still up.
            ticks = max(0, math.ceil(draw.shutdown / REBOOT_TICK_S) - 1)  # those strictly before the power-off
            main += [(t + k * REBOOT_TICK_S, RebootTick()) for k in range(1, ticks + 1)]
            t += draw.shutdown
            main.append((t, PoweredOff()))
            main.append((t + draw.reboot, BootedOld() if draw.outcome == "rollback" else BootedNew()))
    if not live:
        _add_requests(main, draw, uuid, ack, download_end)
    return [(start_us + round(sec * 1e6 / time_scale), inp) for sec, inp in main]


def _add_requests(main: list[tuple[float, Input]], draw: OperationDraw, uuid: str, ack: float,
                  download_end: float) -> None:
    """Insert the simulated Cancel and second Update of a self-driven operation (in place)."""
    if draw.outcome == "cancel":
        if draw.streaming:
            pos, at = 1, ack  # only Acknowledged is cancellable: the Cancel lands before start_update
        else:
            at = ack + draw.cancel_fraction * (download_end - ack)
            kinds = [type(inp) for _, inp in main]
            done = kinds.index(DownloadDone) if DownloadDone in kinds else len(main)
            # After Acknowledged / Downloading 0, before the download completes.
            pos = min(max(bisect.bisect_right([s for s, _ in main], at), 2), done)
            at = max(at, main[pos - 1][0])
        del main[pos:]  # the operation ends with Failure+Canceled: nothing after it happens
        main.append((at, CancelRequested(uuid)))
    elif draw.outcome == "late_cancel":
        deploy_start = download_end
        at = deploy_start + draw.cancel_fraction * draw.deploy
        kinds = [type(inp) for _, inp in main]
        # Deploying starts after DownloadDone (StartUpdate when streaming); the Cancel lands before Deployed.
        first = (kinds.index(DownloadDone) if DownloadDone in kinds else kinds.index(StartUpdate)) + 1
        last = kinds.index(DeployDone) if DeployDone in kinds else len(main)
        pos = min(max(bisect.bisect_right([s for s, _ in main], at), first), last)
        main.insert(pos, (max(at, main[pos - 1][0]), CancelRequested(uuid)))
    if draw.second_uuid is not None:
        # While the device is up and the operation runs: after StartUpdate, before the final input (or
        # before PoweredOff, since an offline device receives nothing).
        kinds = [type(inp) for _, inp in main]
        end = kinds.index(PoweredOff) if PoweredOff in kinds else len(main) - 1
        end_t = main[end][0]
        at = ack + draw.second_fraction * (end_t - ack)
        pos = min(max(bisect.bisect_right([s for s, _ in main], at), 2), end)
        at = min(max(at, main[pos - 1][0]), end_t)
        main.insert(pos, (at, UpdateRequested(draw.second_uuid)))
