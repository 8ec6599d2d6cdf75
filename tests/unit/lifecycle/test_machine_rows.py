"""One test per row of docs/protocol.md section 4 (edgehog-device-runtime src/ota/mod.rs, ota_handle.rs): the exact
event sequence the machine publishes."""

from __future__ import annotations

import pytest

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
    Malformed,
    PersistFailed,
    PoweredOff,
    RebootFailed,
    RebootStarted,
    RebootTick,
    StartUpdate,
    UpdateRequested,
)
from simulator.lifecycle.machine import OtaMachine
from simulator.lifecycle.states import TRANSITIONS, Phase

U = "11111111-1111-4111-8111-111111111111"
V = "22222222-2222-4222-8222-222222222222"
S, C = OtaStatus, OtaStatusCode


def run(machine: OtaMachine, inputs: list[Input]) -> list[tuple[str, str, int, str, str]]:
    out: list[OtaEvent] = []
    for inp in inputs:
        out += machine.handle(inp)
    return [(e.request_uuid, str(e.status), e.progress, str(e.code), e.message) for e in out]


def ev(status: OtaStatus, progress: int = 0, code: OtaStatusCode = C.NONE, message: str = "",
       uuid: str = U) -> tuple[str, str, int, str, str]:
    return (uuid, str(status), progress, str(code), message)


def to_deploying(m: OtaMachine) -> None:
    run(m, [UpdateRequested(U), StartUpdate(), DownloadProgress(100), DownloadDone()])


def test_success_path_with_progress_steps_and_reboot_ticks() -> None:
    m = OtaMachine()
    inputs: list[Input] = [UpdateRequested(U), StartUpdate()]
    inputs += [DownloadProgress(p) for p in (3, 10, 15, 20, 29, 30, 55, 99, 100)]
    inputs += [DownloadDone()] + [DeployProgress(p) for p in (5, 10, 19, 20, 40, 100)]
    inputs += [DeployDone(), RebootStarted(), RebootTick(), RebootTick(), PoweredOff(), BootedNew()]
    assert run(m, inputs) == [
        ev(S.ACKNOWLEDGED), ev(S.DOWNLOADING, 0), ev(S.DOWNLOADING, 10), ev(S.DOWNLOADING, 20),
        ev(S.DOWNLOADING, 30), ev(S.DOWNLOADING, 55), ev(S.DOWNLOADING, 99), ev(S.DOWNLOADING, 100),
        ev(S.DEPLOYING, 0),
        ev(S.DEPLOYING, 10), ev(S.DEPLOYING, 20), ev(S.DEPLOYING, 40), ev(S.DEPLOYING, 100), ev(S.DEPLOYED),
        ev(S.REBOOTING), ev(S.REBOOTING), ev(S.REBOOTING), ev(S.SUCCESS),
    ]
    assert m.phase is Phase.IDLE and m.uuid is None


def test_streaming_skips_downloading() -> None:
    m = OtaMachine(streaming=True)
    assert run(m, [UpdateRequested(U), StartUpdate(), DeployProgress(50), DeployDone()]) == [
        ev(S.ACKNOWLEDGED), ev(S.DEPLOYING, 0), ev(S.DEPLOYING, 50), ev(S.DEPLOYED)]
    with pytest.raises(IllegalTransition):
        OtaMachine(streaming=True).handle(DownloadProgress(10))


def test_granularity_is_configurable() -> None:
    m = OtaMachine(progress_step=25)
    out = run(m, [UpdateRequested(U), StartUpdate()] + [DownloadProgress(p) for p in range(10, 101, 10)])
    assert [e[2] for e in out if e[1] == "Downloading"] == [0, 30, 60, 90, 100]
    with pytest.raises(ValueError):
        OtaMachine(progress_step=5)


def test_download_attempt_fails_then_retry_succeeds() -> None:
    m = OtaMachine()
    out = run(m, [UpdateRequested(U), StartUpdate(), DownloadProgress(40),
                  DownloadAttemptFailed(C.NETWORK_ERROR), BackoffElapsed(), DownloadProgress(10),
                  DownloadAttemptFailed(C.IO_ERROR, "Unable to write chunk"), BackoffElapsed(),
                  DownloadProgress(100), DownloadDone()])
    assert out == [ev(S.ACKNOWLEDGED), ev(S.DOWNLOADING, 0), ev(S.DOWNLOADING, 40),
                   ev(S.ERROR, 0, C.NETWORK_ERROR, "Error downloading update"), ev(S.DOWNLOADING, 10),
                   ev(S.ERROR, 0, C.IO_ERROR, "Unable to write chunk"), ev(S.DOWNLOADING, 100),
                   ev(S.DEPLOYING, 0)]


def test_attempts_exhausted_after_five_then_internal_error() -> None:
    m = OtaMachine()
    inputs: list[Input] = [UpdateRequested(U), StartUpdate()]
    for _ in range(5):
        inputs += [DownloadAttemptFailed(C.INTERNAL_ERROR, "x"), BackoffElapsed()]
    out = run(m, inputs)
    assert out[2:] == [ev(S.ERROR, 0, C.INTERNAL_ERROR, "x")] * 5 + [
        ev(S.FAILURE, 0, C.INTERNAL_ERROR, "Too many attempts to download the OTA file")]
    assert m.phase is Phase.IDLE


def test_invalid_base_image_after_download_and_during_deploy() -> None:
    m = OtaMachine()
    out = run(m, [UpdateRequested(U), StartUpdate(), DownloadProgress(100),
                  DeployFailed(C.INVALID_BASE_IMAGE, "b")])
    assert out[-2:] == [ev(S.DOWNLOADING, 100), ev(S.FAILURE, 0, C.INVALID_BASE_IMAGE, "b")]
    m = OtaMachine()
    to_deploying(m)
    assert run(m, [DeployFailed()]) == [ev(S.FAILURE, 0, C.INVALID_BASE_IMAGE, "Update failed with signal 1")]


def test_cannot_persist_state_is_io_error() -> None:
    m = OtaMachine()
    to_deploying(m)
    assert run(m, [PersistFailed()]) == [ev(S.FAILURE, 0, C.IO_ERROR, "Unable to persist ota state")]


def test_reboot_command_fails() -> None:
    m = OtaMachine()
    to_deploying(m)
    assert run(m, [DeployDone(), RebootStarted(), RebootFailed()]) == [
        ev(S.DEPLOYED), ev(S.REBOOTING), ev(S.FAILURE, 0, C.INTERNAL_ERROR, "Unable to run reboot command")]


def test_rollback_after_booting_old_slot() -> None:
    m = OtaMachine()
    to_deploying(m)
    assert run(m, [DeployDone(), RebootStarted(), PoweredOff(), BootedOld()])[-1] == ev(
        S.FAILURE, 0, C.SYSTEM_ROLLBACK, "Unable to switch slot")


def test_second_update_with_other_uuid_is_refused_and_first_continues() -> None:
    m = OtaMachine()
    run(m, [UpdateRequested(U), StartUpdate()])
    assert run(m, [UpdateRequested(V)]) == [ev(S.FAILURE, 0, C.UPDATE_ALREADY_IN_PROGRESS, "", uuid=V)]
    assert m.uuid == U and m.phase is Phase.DOWNLOADING
    assert run(m, [DownloadProgress(100)]) == [ev(S.DOWNLOADING, 100)]


def test_same_uuid_update_is_ignored() -> None:
    m = OtaMachine()
    run(m, [UpdateRequested(U)])
    assert run(m, [UpdateRequested(U)]) == []
    assert m.phase is Phase.ACKNOWLEDGED


@pytest.mark.parametrize("prefix", [
    [UpdateRequested(U)],
    [UpdateRequested(U), StartUpdate(), DownloadProgress(30)],
    [UpdateRequested(U), StartUpdate(), DownloadAttemptFailed(C.NETWORK_ERROR)],  # during the backoff
])
def test_cancel_during_acknowledged_or_downloading(prefix: list[Input]) -> None:
    m = OtaMachine()
    run(m, prefix)
    assert run(m, [CancelRequested(U)]) == [ev(S.FAILURE, 0, C.CANCELED)]
    assert m.phase is Phase.IDLE


@pytest.mark.parametrize("extra", [[], [DeployDone()], [DeployDone(), RebootStarted()]])
def test_cancel_once_deploying_started_publishes_nothing(extra: list[Input]) -> None:
    m = OtaMachine()
    to_deploying(m)
    run(m, extra)
    phase = m.phase
    assert run(m, [CancelRequested(U)]) == []
    assert m.phase is phase and m.uuid == U


def test_cancel_with_unknown_uuid_or_nothing_running() -> None:
    m = OtaMachine()
    assert run(m, [CancelRequested(V)]) == [ev(S.FAILURE, 0, C.INTERNAL_ERROR,
                                               "Unable to cancel OTA request, internal request is empty", V)]
    run(m, [UpdateRequested(U)])
    assert run(m, [CancelRequested(V)]) == [
        ev(S.FAILURE, 0, C.INTERNAL_ERROR, "Unable to cancel OTA request, they have different identifier", V)]
    assert m.uuid == U


def test_malformed_request_is_dropped() -> None:
    m = OtaMachine()
    assert run(m, [Malformed("no uuid")]) == []
    run(m, [UpdateRequested(U)])
    assert run(m, [Malformed()]) == [] and m.phase is Phase.ACKNOWLEDGED


@pytest.mark.parametrize(("prefix", "bad", "state"), [
    ([], DownloadProgress(10), "Idle"),
    ([UpdateRequested(U)], DeployDone(), "Acknowledged"),
    ([UpdateRequested(U), StartUpdate(), DownloadProgress(50)], DownloadProgress(40), "Downloading"),
    ([UpdateRequested(U), StartUpdate(), DownloadAttemptFailed()], DownloadProgress(10), "DownloadBackoff"),
    ([UpdateRequested(U), StartUpdate()], DownloadAttemptFailed(C.CANCELED), "Downloading"),
])
def test_illegal_transition_names_state_and_event(prefix: list[Input], bad: Input, state: str) -> None:
    m = OtaMachine()
    run(m, prefix)
    with pytest.raises(IllegalTransition) as info:
        m.handle(bad)
    assert info.value.state == state
    assert type(bad).__name__ in info.value.event
    assert state in str(info.value) and type(bad).__name__ in str(info.value)


def test_offline_device_receives_nothing() -> None:
    m = OtaMachine()
    to_deploying(m)
    run(m, [DeployDone(), RebootStarted(), PoweredOff()])
    for inp in (UpdateRequested(V), CancelRequested(U), RebootTick()):
        with pytest.raises(IllegalTransition):
            m.handle(inp)


def test_every_handler_in_the_table_exists() -> None:
    for rule in TRANSITIONS.values():
        assert callable(getattr(OtaMachine, f"_{rule.handler}"))
