"""What can happen to a device during an OTA operation: the inputs of the lifecycle machine.

Each input is a frozen dataclass named after a step of edgehog-device-runtime src/ota/mod.rs
(`Ota::next`, `retry_download`, `wget`, `deploy`, `reboot`, `wait_reboot`, `check_reboot`) or of
src/ota/ota_handle.rs (Update and Cancel requests). Inputs carry device facts only; the machine decides which
OTAEvents the runtime publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.events import OtaStatusCode

__all__ = [
    "DOWNLOAD_ERROR_CODES",
    "BackoffElapsed",
    "BootedNew",
    "BootedOld",
    "CancelRequested",
    "DeployDone",
    "DeployFailed",
    "DeployProgress",
    "DownloadAttemptFailed",
    "DownloadDone",
    "DownloadProgress",
    "Input",
    "Malformed",
    "PersistFailed",
    "PoweredOff",
    "RebootFailed",
    "RebootStarted",
    "RebootTick",
    "StartUpdate",
    "UpdateRequested",
    "input_kind",
]

# Codes `wget` can fail an attempt with (mod.rs: OtaError::Network, ::Io, ::Internal).
DOWNLOAD_ERROR_CODES = frozenset(
    {OtaStatusCode.NETWORK_ERROR, OtaStatusCode.IO_ERROR, OtaStatusCode.INTERNAL_ERROR}
)


@dataclass(frozen=True, slots=True)
class UpdateRequested:
    """An OTARequest with operation Update arrived (ota_handle.rs)."""

    uuid: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """An OTARequest with operation Cancel arrived (ota_handle.rs)."""

    uuid: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request the runtime cannot parse: dropped silently (docs/protocol.md section 4, last row)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class StartUpdate:
    """`start_update` right after Acknowledged: Downloading 0, or Deploying 0 in streaming mode."""


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """`wget` received bytes: `percent` of the bundle is on disk in the current attempt (0..100)."""

    percent: int


@dataclass(frozen=True, slots=True)
class DownloadAttemptFailed:
    """One `wget` attempt failed: NetworkError, IOError or InternalError."""

    code: OtaStatusCode = OtaStatusCode.NETWORK_ERROR
    message: str = "Error downloading update"


@dataclass(frozen=True, slots=True)
class BackoffElapsed:
    """The 2/4/8/16/32 s sleep after a failed attempt is over (`retry_download`)."""


@dataclass(frozen=True, slots=True)
class DownloadDone:
    """The bundle is complete and compatible: the runtime moves to Deploying 0."""


@dataclass(frozen=True, slots=True)
class DeployProgress:
    """RAUC reported `percent` (0..100) of the installation."""

    percent: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class DeployFailed:
    """The bundle was rejected (after download) or the install failed (during deploy)."""

    code: OtaStatusCode = OtaStatusCode.INVALID_BASE_IMAGE
    message: str = "Update failed with signal 1"


@dataclass(frozen=True, slots=True)
class PersistFailed:
    """`deploy` could not write the pending state (mod.rs: "Unable to persist ota state")."""


@dataclass(frozen=True, slots=True)
class DeployDone:
    """RAUC's Completed signal 0."""


@dataclass(frozen=True, slots=True)
class RebootStarted:
    """`reboot` is about to run the reboot command (Rebooting is published first)."""


@dataclass(frozen=True, slots=True)
class RebootTick:
    """30 s of device time passed while the machine is still up (`wait_reboot`)."""


@dataclass(frozen=True, slots=True)
class RebootFailed:
    """The reboot command failed (mod.rs: "Unable to run reboot command")."""


@dataclass(frozen=True, slots=True)
class PoweredOff:
    """The machine went down: nothing is published or received until it boots."""


@dataclass(frozen=True, slots=True)
class BootedNew:
    """Booted into the updated slot (`check_reboot` -> Success)."""


@dataclass(frozen=True, slots=True)
class BootedOld:
    """Booted into the old slot (`do_pending_ota` -> SystemRollback "Unable to switch slot")."""


Input = (
    UpdateRequested | CancelRequested | Malformed | StartUpdate | DownloadProgress
    | DownloadAttemptFailed | BackoffElapsed | DownloadDone | DeployProgress | DeployFailed | PersistFailed
    | DeployDone | RebootStarted | RebootTick | RebootFailed | PoweredOff | BootedNew | BootedOld
)


def input_kind(inp: Input) -> str:
    """The key of `inp` in the TRANSITIONS table: its class name."""
    return type(inp).__name__
