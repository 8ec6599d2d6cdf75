"""Check a scripted lifecycle against the lifecycle machine: could edgehog-device-runtime publish it?

Each step is translated into the machine input(s) that make the runtime publish that status (docs/protocol.md
section 4), the machine is run, and its answer must be exactly that one event (status, progress, code; the
message is free text). The scenario loader calls `check_script` and turns each (step index, message) into a
`file:line: lifecycle...steps[i]: message` error.
"""

from __future__ import annotations

from simulator.errors import IllegalTransition
from simulator.events import OtaEvent, OtaStatus, OtaStatusCode
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
from simulator.lifecycle.machine import OtaMachine
from simulator.lifecycle.states import MAX_DOWNLOAD_ATTEMPTS, Phase
from simulator.scenario.model import ScriptedLifecycle, ScriptedStep

__all__ = ["check_script"]

_UUID = "00000000-0000-4000-8000-000000000000"  # any uuid: a script is one operation


def _failure_inputs(machine: OtaMachine, code: OtaStatusCode) -> list[Input]:
    phase = machine.phase
    if code is OtaStatusCode.CANCELED:
        return [CancelRequested(_UUID)]
    if code is OtaStatusCode.SYSTEM_ROLLBACK:
        return [PoweredOff(), BootedOld()] if phase is Phase.REBOOTING else [BootedOld()]
    if code is OtaStatusCode.IO_ERROR:
        return [PersistFailed()]
    if code is OtaStatusCode.INVALID_BASE_IMAGE:
        return [DeployFailed(code)]
    if code is OtaStatusCode.INTERNAL_ERROR:
        if phase is Phase.BACKOFF and machine.failed_attempts >= MAX_DOWNLOAD_ATTEMPTS:
            return [BackoffElapsed()]
        if phase is Phase.REBOOTING:
            return [RebootFailed()]
        return [DeployFailed(code)]
    raise ValueError(f"Failure with code {str(code)!r} is not part of one operation's script")


def _inputs(machine: OtaMachine, step: ScriptedStep, status: OtaStatus, code: OtaStatusCode) -> list[Input]:
    """The inputs after which the runtime would publish `step` in the machine's current phase."""
    phase = machine.phase
    backoff: list[Input] = [BackoffElapsed()] if phase is Phase.BACKOFF else []
    if status is OtaStatus.ACKNOWLEDGED:
        return [UpdateRequested(_UUID)]
    if status is OtaStatus.DOWNLOADING:
        if phase is Phase.ACKNOWLEDGED:
            return [StartUpdate()]
        return [*backoff, DownloadProgress(step.progress)]
    if status is OtaStatus.ERROR:
        return [*backoff, DownloadAttemptFailed(code)]
    if status is OtaStatus.DEPLOYING:
        if phase is Phase.ACKNOWLEDGED:
            return [StartUpdate()]
        if phase is Phase.DOWNLOADING:
            return [DownloadDone()]
        return [DeployProgress(step.progress)]
    if status is OtaStatus.DEPLOYED:
        return [DeployDone()]
    if status is OtaStatus.REBOOTING:
        return [RebootStarted()] if phase is Phase.DEPLOYED else [RebootTick()]
    if status is OtaStatus.SUCCESS:
        return [PoweredOff(), BootedNew()] if phase is Phase.REBOOTING else [BootedNew()]
    return _failure_inputs(machine, code)


def _describe(status: str, progress: int, code: str) -> str:
    """"Downloading 50", "Failure InternalError", "Deployed": how a step reads in a message."""
    parts = [status]
    if progress or status in ("Downloading", "Deploying"):
        parts.append(str(progress))
    if code:
        parts.append(code)
    return " ".join(parts)


def check_script(lifecycle: ScriptedLifecycle) -> list[tuple[int, str]]:
    """Problems of a script as (step index, message); [] when the runtime could publish it as written.

    Checking stops at the first step the machine refuses (later steps depend on it).
    """
    steps = lifecycle.steps
    if not steps:
        return [(0, "a script needs at least one step")]
    problems: list[tuple[int, str]] = []
    for i, step in enumerate(steps):
        if step.delay < 0:
            problems.append((i, f"delay must be >= 0 s, got {step.delay}"))
    if lifecycle.reboot_duration < 0:
        problems.append((0, f"reboot_duration must be >= 0 s, got {lifecycle.reboot_duration}"))
    streaming = len(steps) > 1 and steps[0].status == "Acknowledged" and steps[1].status == "Deploying"
    machine = OtaMachine(streaming=streaming)
    for i, step in enumerate(steps):
        try:
            status = OtaStatus(step.status)
        except ValueError:
            return [*problems, (i, f"unknown status {step.status!r}; expected one of "
                                   + ", ".join(s.value for s in OtaStatus))]
        try:
            code = OtaStatusCode(step.code)
        except ValueError:
            return [*problems, (i, f"unknown statusCode {step.code!r}")]
        if i == 0 and status is not OtaStatus.ACKNOWLEDGED:
            return [*problems, (0, f"a script starts with Acknowledged, not {step.status}")]
        if machine.phase is Phase.IDLE and i > 0:
            return [*problems, (i, "the operation already ended (Success/Failure is final)")]
        if status not in (OtaStatus.ERROR, OtaStatus.FAILURE) and code is not OtaStatusCode.NONE:
            return [*problems, (i, f"{step.status} carries no statusCode (got {step.code!r})")]
        try:
            events: list[OtaEvent] = []
            for inp in _inputs(machine, step, status, code):
                events += machine.handle(inp)
        except (IllegalTransition, ValueError) as exc:
            text = _describe(step.status, step.progress, step.code)
            return [*problems, (i, f"{text} cannot follow here: {exc}")]
        wanted = (status, step.progress, code)
        got = [(e.status, e.progress, e.code) for e in events]
        if got != [wanted]:
            shown = ", ".join(_describe(str(s), p, str(c)) for s, p, c in got) or "nothing"
            wanted_text = _describe(step.status, step.progress, step.code)
            return [*problems, (i, f"the runtime would publish {shown} here, not {wanted_text}")]
    return problems
