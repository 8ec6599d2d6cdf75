"""The phases of one device's OTA handling and the table of legal transitions (h11 `_state.py` style).

Reproduces edgehog-device-runtime src/ota/mod.rs (`OtaStatus`, `Ota::next`, `handle_ota_update`) and
src/ota/ota_handle.rs (Update/Cancel while an OTA runs), as summarised in docs/protocol.md section 4. A pair
(phase, input kind) absent from TRANSITIONS is illegal: the machine raises IllegalTransition naming both.

Phases are the runtime's `OtaStatus` values that last in time (Init, Rebooted, Success, Failure and Error are
instantaneous there and publish at most one event each, so they have no phase here):
- BACKOFF is `retry_download` sleeping 2^i s after an Error (still `Downloading`, hence cancellable);
- OFFLINE is the machine powered down between `reboot` and `check_reboot` (it neither publishes nor receives).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CANCELLABLE", "MAX_DOWNLOAD_ATTEMPTS", "REBOOT_TICK_S", "RUNNING", "TRANSITIONS", "Phase", "Rule"]


class Phase(StrEnum):
    IDLE = "Idle"
    ACKNOWLEDGED = "Acknowledged"
    DOWNLOADING = "Downloading"
    BACKOFF = "DownloadBackoff"
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    REBOOTING = "Rebooting"
    OFFLINE = "Offline"


# mod.rs `retry_download`: `for i in 1..=5`, sleeping `2^i` s after each failure (2, 4, 8, 16, 32 s).
MAX_DOWNLOAD_ATTEMPTS = 5
# mod.rs `wait_reboot`: Rebooting is published again every 30 s while the machine stays up.
REBOOT_TICK_S = 30.0

# Phases with an operation in progress (ota_handle.rs keeps `current` set).
RUNNING = frozenset({Phase.ACKNOWLEDGED, Phase.DOWNLOADING, Phase.BACKOFF, Phase.DEPLOYING, Phase.DEPLOYED,
                     Phase.REBOOTING})
# mod.rs `OtaStatus::is_cancellable`: Init, Acknowledged, Downloading (BACKOFF is inside Downloading).
CANCELLABLE = frozenset({Phase.ACKNOWLEDGED, Phase.DOWNLOADING, Phase.BACKOFF})


@dataclass(frozen=True, slots=True)
class Rule:
    """What the machine does: `handler` (a method of OtaMachine) and the phases it may end in."""

    handler: str
    next: tuple[Phase, ...]


def _build() -> dict[tuple[Phase, str], Rule]:
    table: dict[tuple[Phase, str], Rule] = {
        (Phase.IDLE, "UpdateRequested"): Rule("acknowledge", (Phase.ACKNOWLEDGED,)),
        (Phase.IDLE, "CancelRequested"): Rule("cancel", (Phase.IDLE,)),
        (Phase.IDLE, "Malformed"): Rule("drop", (Phase.IDLE,)),
        (Phase.ACKNOWLEDGED, "StartUpdate"): Rule("start", (Phase.DOWNLOADING, Phase.DEPLOYING)),
        (Phase.DOWNLOADING, "DownloadProgress"): Rule("download_progress", (Phase.DOWNLOADING,)),
        (Phase.DOWNLOADING, "DownloadAttemptFailed"): Rule("attempt_failed", (Phase.BACKOFF,)),
        (Phase.DOWNLOADING, "DownloadDone"): Rule("download_done", (Phase.DEPLOYING,)),
        # The bundle check after a complete download (mod.rs `download`: info/compatible) -> InvalidBaseImage.
        (Phase.DOWNLOADING, "DeployFailed"): Rule("bundle_rejected", (Phase.IDLE,)),
        (Phase.BACKOFF, "BackoffElapsed"): Rule("retry", (Phase.DOWNLOADING, Phase.IDLE)),
        (Phase.DEPLOYING, "DeployProgress"): Rule("deploy_progress", (Phase.DEPLOYING,)),
        (Phase.DEPLOYING, "DeployFailed"): Rule("deploy_failed", (Phase.IDLE,)),
        (Phase.DEPLOYING, "PersistFailed"): Rule("persist_failed", (Phase.IDLE,)),
        (Phase.DEPLOYING, "DeployDone"): Rule("deployed", (Phase.DEPLOYED,)),
        (Phase.DEPLOYED, "RebootStarted"): Rule("reboot", (Phase.REBOOTING,)),
        (Phase.REBOOTING, "RebootTick"): Rule("still_rebooting", (Phase.REBOOTING,)),
        (Phase.REBOOTING, "RebootFailed"): Rule("reboot_failed", (Phase.IDLE,)),
        (Phase.REBOOTING, "PoweredOff"): Rule("power_off", (Phase.OFFLINE,)),
        (Phase.OFFLINE, "BootedNew"): Rule("booted_new", (Phase.IDLE,)),
        (Phase.OFFLINE, "BootedOld"): Rule("booted_old", (Phase.IDLE,)),
    }
    # Requests can arrive in every phase where the device is up; what they do depends on the uuid.
    for phase in RUNNING:
        table[(phase, "UpdateRequested")] = Rule("update_while_running", (phase,))
        table[(phase, "CancelRequested")] = Rule("cancel", (phase, Phase.IDLE))
        table[(phase, "Malformed")] = Rule("drop", (phase,))
    return table


TRANSITIONS: Mapping[tuple[Phase, str], Rule] = _build()
