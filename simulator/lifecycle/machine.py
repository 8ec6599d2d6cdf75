"""The OTA lifecycle machine: pure, table-driven, no I/O, no clock.

`OtaMachine.handle(input)` returns the OTAEvents edgehog-device-runtime publishes for that input
(src/ota/mod.rs, src/ota/ota_handle.rs; docs/protocol.md section 4). Which handler runs is looked up in
states.TRANSITIONS; a pair absent from the table, or an input whose values the runtime cannot produce
(progress going back), raises simulator.errors.IllegalTransition naming the phase and the input.
Timing is the caller's business (lifecycle/plans.py for planned runs, simulator/device.py for live ones).
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.errors import IllegalTransition
from simulator.events import OtaEvent, OtaStatus, OtaStatusCode
from simulator.lifecycle.inputs import (
    DOWNLOAD_ERROR_CODES,
    CancelRequested,
    DeployFailed,
    DeployProgress,
    DownloadAttemptFailed,
    DownloadProgress,
    Input,
    UpdateRequested,
    input_kind,
)
from simulator.lifecycle.states import MAX_DOWNLOAD_ATTEMPTS, RUNNING, TRANSITIONS, Phase

__all__ = ["MESSAGES", "OtaMachine"]

# The runtime's message texts (mod.rs and ota_handle.rs); "" where it sets none.
MESSAGES = {
    "too_many_attempts": "Too many attempts to download the OTA file",
    "persist": "Unable to persist ota state",
    "reboot_command": "Unable to run reboot command",
    "switch_slot": "Unable to switch slot",
    "cancel_mismatch": "Unable to cancel OTA request, they have different identifier",
    "cancel_empty": "Unable to cancel OTA request, internal request is empty",
}

_Handler = Callable[["OtaMachine", Input], list[OtaEvent]]


class OtaMachine:
    """One device's OTA handler. `streaming`: skip Downloading (mod.rs `start_update`).

    `progress_step`: percentage points between progress events (the runtime's DOWNLOAD_PERC_ROUNDING_STEP and
    DEPLOY_PERC_ROUNDING_STEP are 10; a larger step publishes fewer events, never more).
    """

    __slots__ = (
        "_attempts", "_complete", "_last_seen", "_last_sent", "_phase", "_step", "_streaming", "_uuid",
    )

    def __init__(self, streaming: bool = False, progress_step: int = 10) -> None:
        if progress_step < 10 or progress_step > 100:
            raise ValueError(f"progress_step must be 10..100 percentage points, got {progress_step}")
        self._streaming = streaming
        self._step = progress_step
        self._phase = Phase.IDLE
        self._uuid: str | None = None
        self._attempts = 0  # failed download attempts of the current operation
        self._last_sent = 0  # progress of the last Downloading/Deploying event of the current attempt
        self._last_seen = 0  # progress of the last input of the current attempt
        self._complete = False  # Downloading 100 published in the current attempt

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def uuid(self) -> str | None:
        """The requestUUID of the operation in progress (None when idle)."""
        return self._uuid

    @property
    def failed_attempts(self) -> int:
        return self._attempts

    @property
    def streaming(self) -> bool:
        return self._streaming

    def accepts(self, inp: Input) -> bool:
        """Whether the table has a rule for `inp` in the current phase (values are not checked)."""
        return (self._phase, input_kind(inp)) in TRANSITIONS

    def handle(self, inp: Input) -> list[OtaEvent]:
        # TRANSITIONS' rule with its handler already looked up (_DISPATCH), keyed by input_kind(inp) inlined:
        # the planner handles ~33 inputs per operation (issue 16).
        rule = _DISPATCH.get((self._phase, type(inp).__name__))
        if rule is None:
            raise IllegalTransition(str(self._phase), repr(inp))
        handler, ends = rule
        events = handler(self, inp)
        assert self._phase in ends, f"{handler.__name__[1:]} ended in {self._phase}"
        return events

    # -- helpers ------------------------------------------------------------------------------------------

    def _illegal(self, inp: Input, why: str) -> IllegalTransition:
        return IllegalTransition(str(self._phase), f"{inp!r} ({why})")

    def _event(self, status: OtaStatus, progress: int = 0, code: OtaStatusCode = OtaStatusCode.NONE,
               message: str = "") -> OtaEvent:
        assert self._uuid is not None
        return OtaEvent(self._uuid, status, progress, code, message)

    def _finish(self, status: OtaStatus, code: OtaStatusCode = OtaStatusCode.NONE,
                message: str = "") -> list[OtaEvent]:
        event = self._event(status, 0, code, message)
        self._phase = Phase.IDLE
        self._uuid = None
        self._attempts = 0
        self._reset_progress()
        return [event]

    def _reset_progress(self) -> None:
        self._last_sent = 0
        self._last_seen = 0
        self._complete = False

    def _check_progress(self, inp: Input, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise self._illegal(inp, "progress must be 0..100")
        if percent < self._last_seen:
            raise self._illegal(inp, f"progress goes back from {self._last_seen}")

    # -- handlers (names referenced by states.TRANSITIONS) -----------------------------------------------

    def _acknowledge(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, UpdateRequested)
        self._uuid = inp.uuid
        self._phase = Phase.ACKNOWLEDGED
        return [self._event(OtaStatus.ACKNOWLEDGED)]

    def _update_while_running(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, UpdateRequested)
        if inp.uuid == self._uuid:
            return []  # the same request again (Edgehog re-sends on timeout): ignored
        # The running operation continues; the refusal carries the NEW uuid (docs/protocol.md section 4).
        return [OtaEvent(inp.uuid, OtaStatus.FAILURE, 0, OtaStatusCode.UPDATE_ALREADY_IN_PROGRESS, "")]

    def _cancel(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, CancelRequested)
        if self._uuid is None:
            return [OtaEvent(inp.uuid, OtaStatus.FAILURE, 0, OtaStatusCode.INTERNAL_ERROR,
                             MESSAGES["cancel_empty"])]
        if inp.uuid != self._uuid:
            return [OtaEvent(inp.uuid, OtaStatus.FAILURE, 0, OtaStatusCode.INTERNAL_ERROR,
                             MESSAGES["cancel_mismatch"])]
        if self._phase in (Phase.ACKNOWLEDGED, Phase.DOWNLOADING, Phase.BACKOFF):
            return self._finish(OtaStatus.FAILURE, OtaStatusCode.CANCELED)
        # Not cancellable once Deploying started: mod.rs publishes Failure(Canceled, None), which
        # `as_event` drops (no uuid) -- nothing reaches Astarte and the update goes on.
        return []

    def _drop(self, inp: Input) -> list[OtaEvent]:
        return []

    def _start(self, inp: Input) -> list[OtaEvent]:
        self._reset_progress()
        if self._streaming:
            self._phase = Phase.DEPLOYING
            return [self._event(OtaStatus.DEPLOYING, 0)]
        self._phase = Phase.DOWNLOADING
        return [self._event(OtaStatus.DOWNLOADING, 0)]

    def _download_progress(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, DownloadProgress)
        if self._complete:
            raise self._illegal(inp, "download already complete")
        self._check_progress(inp, inp.percent)
        self._last_seen = inp.percent
        # wget: publish at 100 and on every rise of at least the rounding step since the last one sent.
        if inp.percent == 100 or inp.percent - self._last_sent >= self._step:
            self._last_sent = inp.percent
            self._complete = inp.percent == 100
            return [self._event(OtaStatus.DOWNLOADING, inp.percent)]
        return []

    def _attempt_failed(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, DownloadAttemptFailed)
        if inp.code not in DOWNLOAD_ERROR_CODES:
            raise self._illegal(inp, "a download attempt fails with NetworkError, IOError or InternalError")
        self._attempts += 1
        self._phase = Phase.BACKOFF
        return [self._event(OtaStatus.ERROR, 0, inp.code, inp.message)]

    def _retry(self, inp: Input) -> list[OtaEvent]:
        if self._attempts >= MAX_DOWNLOAD_ATTEMPTS:
            message = MESSAGES["too_many_attempts"]
            return self._finish(OtaStatus.FAILURE, OtaStatusCode.INTERNAL_ERROR, message)
        self._reset_progress()  # a new wget call: progress counts from 0 again, no Downloading 0 is sent
        self._phase = Phase.DOWNLOADING
        return []

    def _complete_download(self) -> list[OtaEvent]:
        if self._complete:
            return []
        self._complete = True
        return [self._event(OtaStatus.DOWNLOADING, 100)]

    def _download_done(self, inp: Input) -> list[OtaEvent]:
        events = self._complete_download()
        self._reset_progress()
        self._phase = Phase.DEPLOYING
        events.append(self._event(OtaStatus.DEPLOYING, 0))
        return events

    def _bundle_rejected(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, DeployFailed)
        if inp.code is not OtaStatusCode.INVALID_BASE_IMAGE:
            raise self._illegal(inp, "a downloaded bundle is rejected with InvalidBaseImage")
        events = self._complete_download()
        return events + self._finish(OtaStatus.FAILURE, inp.code, inp.message)

    def _deploy_progress(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, DeployProgress)
        self._check_progress(inp, inp.percent)
        self._last_seen = inp.percent
        # deploy(): publish when the rise since the last one sent reaches the rounding step (no special 100).
        if inp.percent - self._last_sent >= self._step:
            self._last_sent = inp.percent
            return [self._event(OtaStatus.DEPLOYING, inp.percent, OtaStatusCode.NONE, inp.message)]
        return []

    def _deploy_failed(self, inp: Input) -> list[OtaEvent]:
        assert isinstance(inp, DeployFailed)
        if inp.code not in (OtaStatusCode.INVALID_BASE_IMAGE, OtaStatusCode.INTERNAL_ERROR):
            raise self._illegal(inp, "an install fails with InvalidBaseImage or InternalError")
        return self._finish(OtaStatus.FAILURE, inp.code, inp.message)

    def _persist_failed(self, inp: Input) -> list[OtaEvent]:
        return self._finish(OtaStatus.FAILURE, OtaStatusCode.IO_ERROR, MESSAGES["persist"])

    def _deployed(self, inp: Input) -> list[OtaEvent]:
        self._phase = Phase.DEPLOYED
        return [self._event(OtaStatus.DEPLOYED)]

    def _reboot(self, inp: Input) -> list[OtaEvent]:
        self._phase = Phase.REBOOTING
        return [self._event(OtaStatus.REBOOTING)]

    def _still_rebooting(self, inp: Input) -> list[OtaEvent]:
        return [self._event(OtaStatus.REBOOTING)]

    def _reboot_failed(self, inp: Input) -> list[OtaEvent]:
        return self._finish(OtaStatus.FAILURE, OtaStatusCode.INTERNAL_ERROR, MESSAGES["reboot_command"])

    def _power_off(self, inp: Input) -> list[OtaEvent]:
        self._phase = Phase.OFFLINE
        return []

    def _booted_new(self, inp: Input) -> list[OtaEvent]:
        return self._finish(OtaStatus.SUCCESS)

    def _booted_old(self, inp: Input) -> list[OtaEvent]:
        return self._finish(OtaStatus.FAILURE, OtaStatusCode.SYSTEM_ROLLBACK, MESSAGES["switch_slot"])


_HANDLERS: dict[str, _Handler] = {
    rule.handler: getattr(OtaMachine, f"_{rule.handler}") for rule in TRANSITIONS.values()
}
# (phase, input kind) -> (handler, phases it may end in): TRANSITIONS with each rule's handler resolved.
_DISPATCH: dict[tuple[Phase, str], tuple[_Handler, tuple[Phase, ...]]] = {
    key: (_HANDLERS[rule.handler], rule.next) for key, rule in TRANSITIONS.items()
}
# Every phase where an operation runs accepts requests (checked once at import).
assert all((phase, "CancelRequested") in TRANSITIONS for phase in RUNNING)
