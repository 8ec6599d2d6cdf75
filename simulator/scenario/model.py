"""The scenario model: frozen dataclasses, every duration in seconds, every rate per second.

This is the contract between the YAML loader (loader.py, which produces these objects and reports
`file:line: field: message` errors) and the planners (lifecycle/plans.py, arrival/*). Durations in YAML may be
written `30s`, `5m`, `250ms` or as a number of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ArrivalSpec",
    "BaseImageSpec",
    "CampaignSettings",
    "DeviceStage",
    "Distribution",
    "FaultSpec",
    "FleetSpec",
    "LifecycleMixEntry",
    "RampStage",
    "RandomLifecycle",
    "Scenario",
    "ScriptedLifecycle",
    "ScriptedStep",
]


@dataclass(frozen=True)
class Distribution:
    """A duration distribution in seconds of *device* time (before time_scale).

    kind: "fixed" (value), "uniform" (low..high), "lognormal" (median, sigma), "exponential" (mean).
    """

    kind: Literal["fixed", "uniform", "lognormal", "exponential"] = "fixed"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0
    mean: float = 0.0


NO_SHUTDOWN_DELAY = Distribution("fixed", value=0.0)


@dataclass(frozen=True)
class RandomLifecycle:
    """Seeded random OTA lifecycles reproducing edgehog-device-runtime (docs/protocol.md section 4).

    `outcomes` maps each final outcome to its probability (sum 1 within 1e-9):
      success, download_exhausted (5 failed attempts then Failure+InternalError), invalid_base_image,
      io_error (cannot persist state), reboot_failure, rollback (SystemRollback after reboot),
      cancel (Cancel arrives during Acknowledged/Downloading -> Failure+Canceled),
      late_cancel (Cancel arrives once Deploying started -> ignored, update goes on to Success).
    `download_error_probability`: each download attempt of a non-exhausted outcome fails (Error + code) with
    this probability, retried with the runtime's 2/4/8/16/32 s backoff, at most 4 times (the 5th would be
    exhaustion). `error_codes` weights the code of each failed attempt.
    `double_update_probability`: a second Update with another uuid arrives mid-operation ->
    Failure+UpdateAlreadyInProgress for the new uuid; the first continues.
    `shutdown_delay`: device time between Rebooting and the machine going down (a slow shutdown); the runtime
    publishes Rebooting again every 30 s meanwhile (mod.rs `wait_reboot`). Default 0: down at once. Drawn only
    when set, so the plans of scenarios without it do not change.
    """

    outcomes: tuple[tuple[str, float], ...] = (("success", 1.0),)
    streaming: bool = False
    download_duration: Distribution = Distribution("fixed", value=30.0)
    deploy_duration: Distribution = Distribution("fixed", value=20.0)
    reboot_duration: Distribution = Distribution("fixed", value=15.0)
    progress_step: int = 10  # percentage points between progress events (>= 10, as the runtime)
    download_error_probability: float = 0.0
    error_codes: tuple[tuple[str, float], ...] = (("NetworkError", 1.0),)
    double_update_probability: float = 0.0
    acknowledge_delay: Distribution = Distribution("fixed", value=0.0)
    shutdown_delay: Distribution = NO_SHUTDOWN_DELAY
    # Backend-driven devices only: "simulate" draws the download's duration; "fetch" GETs the OTARequest's url
    # (simulator.transports.http_download), progress from the real bytes, failures retried like the runtime.
    download: Literal["simulate", "fetch"] = "simulate"


@dataclass(frozen=True)
class ScriptedStep:
    """One explicit OTAEvent; `delay` seconds of device time after the previous step."""

    status: str
    progress: int = 0
    code: str = ""
    message: str = ""
    delay: float = 0.0
    line: int = 0  # YAML line, for errors found when the script is checked against the lifecycle machine


@dataclass(frozen=True)
class ScriptedLifecycle:
    """An explicit sequence. Checked against the lifecycle machine at validation (illegal scripts refused).

    `reboot_after` (the Rebooting step's index) makes the device really disconnect for `reboot_duration` s.
    """

    steps: tuple[ScriptedStep, ...]
    reboot_duration: float = 15.0


@dataclass(frozen=True)
class LifecycleMixEntry:
    weight: float
    random: RandomLifecycle | None = None
    scripted: ScriptedLifecycle | None = None
    name: str = ""


@dataclass(frozen=True)
class RampStage:
    duration: float  # seconds of wall time
    target: float  # operations per second reached (linearly) at the end of the stage


@dataclass(frozen=True)
class ArrivalSpec:
    """How OTA operations arrive (open model: the arrival does not wait for earlier operations).

    model: "burst" (all `count` at offset `start`), "constant" (`rate` ops/s), "poisson" (mean `rate` ops/s),
    "ramping" (`stages`, from `start_rate`). `count` caps the number of operations (0 = until `duration`).
    `phase`: "random" spreads each device's grid slot by a seeded random phase (default; docs/protocol.md
    section 7), "aligned" keeps the synchronized burst the scenario asked for (and the report says so).
    """

    model: Literal["burst", "constant", "poisson", "ramping"] = "constant"
    rate: float = 1.0
    count: int = 0
    start: float = 0.0
    start_rate: float = 0.0
    stages: tuple[RampStage, ...] = ()
    phase: Literal["random", "aligned"] = "random"


@dataclass(frozen=True)
class BaseImageSpec:
    name: str = "edgehog-os"
    version: str = "1.0.0"
    build_id: str = "2026-11-01T00:00:00Z"
    fingerprint: str = ""


@dataclass(frozen=True)
class DeviceStage:
    """One stage of `fleet.ramp` (k6-style): the devices online move linearly to `devices` over `duration`."""

    duration: float  # seconds of wall time
    devices: int  # devices online at the end of the stage (the previous stage's count, or 0, at its start)


@dataclass(frozen=True)
class FleetSpec:
    devices: int = 10
    # random: seeded 128-bit ids; sequential: the device's index in the id
    id_scheme: Literal["random", "sequential"] = "random"
    id_prefix: str = ""  # sequential only: a fixed prefix shared by the fleet's ids (decoded bytes)
    base_image: BaseImageSpec = BaseImageSpec()
    target_version: str = "1.1.0"  # BaseImage /version after a successful OTA
    # Devices online over time (empty: the whole fleet is online when the run's clock starts).
    ramp: tuple[DeviceStage, ...] = ()


@dataclass(frozen=True)
class FaultSpec:
    """A fault injected on purpose at `at` seconds of the run (issue 9); `params` depend on `kind`."""

    kind: str
    at: float = 0.0
    duration: float = 0.0
    devices: float = 1.0  # fraction of the fleet affected (0..1]
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CampaignSettings:
    """Rollout settings of the campaign driver in `mode: campaign` (Edgehog campaigns, docs/protocol.md section 5).

    Field names match simulator.backend.campaign.CampaignSpec so a runner can pass them through. Times are
    seconds of *device* time (divided by time_scale on the wall clock, like every lifecycle duration);
    Edgehog's defaults: 3 retries, 300 s timeout (minimum 30 s).
    """

    max_in_progress: int = 10  # operations in flight at once (Edgehog max_in_progress_operations)
    request_timeout_s: float = 300.0  # no OTAEvent for this long => the same request is re-sent
    request_retries: int = 3
    max_failure_percentage: float = 50.0  # 0..100; beyond it the campaign fails
    url: str = "https://updates.fleetsim.invalid/bundle.raucb"  # the OTARequest url


@dataclass(frozen=True)
class Scenario:
    name: str
    realm: str = "fleetsim"
    seed: int = 1
    fleet: FleetSpec = FleetSpec()
    time_scale: float = 1.0  # 60 => one minute of device time passes in one second of wall time
    duration: float = 60.0  # seconds of wall time the run lasts (operations in flight then get graceful_stop)
    # Seconds of wall time operations still in flight at `duration` may go on (k6's gracefulStop, default
    # 30 s); whatever is still open then is cut: counted with a reason, never played, never lost.
    graceful_stop: float = 30.0
    arrival: ArrivalSpec = ArrivalSpec()
    lifecycle: tuple[LifecycleMixEntry, ...] = (LifecycleMixEntry(weight=1.0, random=RandomLifecycle()),)
    transport: Literal["lean", "sdk", "memory"] = "lean"
    target: str = "embedded"  # "embedded" or the path of a target file (real Astarte)
    # self: devices follow the seeded plan. responder: devices answer OTARequests from any sender (a real
    # Edgehog, mosquitto_pub, ...). campaign: responder + fleetsim drives a campaign (embedded backend's driver,
    # or Edgehog's GraphQL API when the target file has an `edgehog:` section).
    mode: Literal["self", "responder", "campaign"] = "self"
    thresholds: tuple[tuple[str, str], ...] = ()  # (metric, "< 50") pairs, k6-style (issue 7)
    # A threshold whose metric has no value (e.g. lost without an observer) is `unknown`: it fails the run
    # only with `thresholds: {on_missing: fail}`; `skip` (default) reports it and does not fail.
    thresholds_on_missing: Literal["fail", "skip"] = "skip"
    faults: tuple[FaultSpec, ...] = ()
    source: str = ""  # the file it came from
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    campaign: CampaignSettings = CampaignSettings()  # used in mode "campaign" only (added by the loader)

    @property
    def answers_requests(self) -> bool:
        """Devices are backend-driven (they wait for OTARequests) rather than self-driven."""
        return self.mode in ("responder", "campaign")
