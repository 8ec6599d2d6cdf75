"""RunSummary: the typed, frozen result of a run; summary.json is its JSON (simulator.metrics.json_tree).

Field names are the summary.json keys. Fields that are threshold/compare metrics say so in their metadata
(`metric(...)`, `sub_metrics(...)`); simulator.metrics.metric_table derives the metric table from them, so a
metric name, its unit, its direction and its place in the summary are written once, here.
Every latency is in milliseconds under its path name; rates are events per second of `duration_s`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from simulator.metrics import names
from simulator.metrics.json_tree import FLATTEN, OMIT_EMPTY, JsonValue, from_json, to_json

__all__ = [
    "SCHEMA_VERSION",
    "AccountingSummary",
    "ClockOffsetSummary",
    "Environment",
    "Events",
    "FaultCaused",
    "FaultRecord",
    "GeneratorSummary",
    "HealthLimits",
    "JoinSummary",
    "Latency",
    "LatencyStats",
    "MetricInfo",
    "Onboarding",
    "OtaSummary",
    "OtaTimes",
    "PlanNotes",
    "Rates",
    "RunNotes",
    "RunSummary",
    "ThresholdReport",
    "ThresholdResult",
    "metric",
    "sub_metrics",
]

SCHEMA_VERSION = 1
METRIC = "metric"
SUB_METRICS = "sub_metrics"
KeyRow = tuple[str | int, ...]  # an EventKey (+ a reason or a count) as a JSON array


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A threshold/compare metric: its k6-style name, unit, and which direction is better."""

    name: str
    unit: str  # "ms", "events", "events/s", "operations", "%"
    lower_is_better: bool


def metric(name: str, unit: str, lower_is_better: bool = True) -> dict[str, object]:
    """Field metadata: this field's value is the metric `name`."""
    return {METRIC: MetricInfo(name, unit, lower_is_better)}


def sub_metrics(**by_path: str) -> dict[str, object]:
    """Field metadata for a latency field: `p99="ack_latency_p99_ms"` (dots go deeper: `connect.p99`)."""
    return {SUB_METRICS: {tuple(path.split(".")): MetricInfo(name, "ms", True) for path, name in by_path.items()}}


@dataclass(frozen=True)
class LatencyStats:
    """One path's percentiles in ms (None when nothing was recorded); negatives were clamped to 0."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None
    count: int = 0
    negative: int | None = None
    overflow: int | None = None
    negative_reasons: Mapping[str, int] = field(default_factory=dict, metadata={OMIT_EMPTY: True})


@dataclass(frozen=True)
class Onboarding:
    """One whole connect at the top (latency_ms.onboarding.p99), each phase beside it under its name."""

    whole: LatencyStats = field(default=LatencyStats(), metadata={FLATTEN: True})
    phases: Mapping[str, LatencyStats] = field(default_factory=dict, metadata={FLATTEN: True})


@dataclass(frozen=True)
class Latency:
    ack: LatencyStats = field(default=LatencyStats(), metadata=sub_metrics(
        p50=names.ACK_LATENCY_P50_MS, p99=names.ACK_LATENCY_P99_MS))
    ack_corrected: LatencyStats = field(default=LatencyStats(), metadata=sub_metrics(
        p99=names.ACK_LATENCY_CORRECTED_P99_MS))
    e2e: LatencyStats = field(default=LatencyStats(), metadata=sub_metrics(
        p50=names.E2E_LATENCY_P50_MS, p99=names.E2E_LATENCY_P99_MS))
    e2e_corrected: LatencyStats = field(default=LatencyStats(), metadata=sub_metrics(
        p99=names.E2E_LATENCY_CORRECTED_P99_MS))
    e2e_device_t: LatencyStats = field(default=LatencyStats(), metadata=sub_metrics(
        p99=names.E2E_DEVICE_T_LATENCY_P99_MS))
    send_lag: LatencyStats = LatencyStats()
    loop_lag: LatencyStats = LatencyStats()
    onboarding: Onboarding = field(default=Onboarding(), metadata=sub_metrics(
        **{"phases.connect.p99": names.ONBOARDING_CONNECT_P99_MS}))

    def paths(self) -> dict[str, LatencyStats]:
        """Every path but onboarding, by name, in summary order."""
        return {"ack": self.ack, "ack_corrected": self.ack_corrected, "e2e": self.e2e,
                "e2e_corrected": self.e2e_corrected, "e2e_device_t": self.e2e_device_t,
                "send_lag": self.send_lag, "loop_lag": self.loop_lag}

    def onboarding_rows(self) -> list[tuple[str, LatencyStats]]:
        """The whole connect, then each phase by name (names.ONBOARDING_PHASES order)."""
        rows = [(names.PATH_ONBOARDING, self.onboarding.whole)]
        rows += [(names.onboarding_path(p), self.onboarding.phases[p]) for p in names.ONBOARDING_PHASES
                 if p in self.onboarding.phases]
        return rows


@dataclass(frozen=True)
class Events:
    """Counts of the run's OTAEvents. Without an observer, the join's counts (delivered...) are None."""

    planned: int = 0
    offered: int = 0
    sent: int = 0
    acked: int = 0
    publish_errors: int = field(default=0, metadata=metric(names.PUBLISH_ERRORS, "events"))
    ack_errors: int = 0
    delivered: int | None = None
    lost: int | None = field(default=None, metadata=metric(names.LOST, "events"))
    duplicated: int | None = field(default=None, metadata=metric(names.DUPLICATED, "events"))
    reordered: int | None = field(default=None, metadata=metric(names.REORDERED, "events"))
    late: int | None = field(default=None, metadata=metric(names.LATE, "events"))
    unexpected: int | None = field(default=None, metadata=metric(names.UNEXPECTED, "events"))
    # Lost events not inside an injected fault's window (extra.faults[].caused has the others).
    lost_outside_faults: int | None = field(default=None, metadata=metric(names.LOST_OUTSIDE_FAULTS, "events"))
    errors_outside_faults: int | None = field(default=None, metadata=metric(names.ERRORS_OUTSIDE_FAULTS,
                                                                            "events"))


@dataclass(frozen=True)
class Rates:
    offered_eps: float | None = field(default=None, metadata=metric(names.OFFERED_EPS, "events/s", False))
    sent_eps: float | None = None
    acked_eps: float | None = field(default=None, metadata=metric(names.ACKED_EPS, "events/s", False))
    delivered_eps: float | None = field(default=None, metadata=metric(names.DELIVERED_EPS, "events/s", False))


@dataclass(frozen=True)
class HealthLimits:
    send_lag_p99_ms: float = 50.0
    cpu_pct: float = 90.0
    loop_lag_p99_ms: float = 50.0
    sdk_device_limit: int = 300
    error_pct: float = 0.1


@dataclass(frozen=True)
class GeneratorSummary:
    cpu_pct: float | None = field(default=None, metadata=metric(names.GENERATOR_CPU_PCT, "%"))
    cpu_samples: int = 0
    send_lag_ms_p99: float | None = field(default=None, metadata=metric(names.SEND_LAG_P99_MS, "ms"))
    loop_lag_ms_p99: float | None = field(default=None, metadata=metric(names.LOOP_LAG_P99_MS, "ms"))
    saturated: bool = False
    sdk_over_limit: bool = False
    connects: int = 0
    session_present: int = 0
    error_reasons: Mapping[str, int] = field(default_factory=dict)
    thresholds: HealthLimits = HealthLimits()


@dataclass(frozen=True)
class OtaTimes:
    p50: float | None = None
    p99: float | None = None
    max: float | None = None
    count: int = 0


@dataclass(frozen=True)
class OtaSummary:
    operations: int = 0
    success: int = field(default=0, metadata=metric(names.OTA_SUCCESS, "operations", False))
    failure: int = 0
    stuck: int = field(default=0, metadata=metric(names.OTA_STUCK, "operations"))
    cut: int = 0  # no final status because the run's bounds cut them (not the backend's doing)
    failure_pct: float | None = field(default=None, metadata=metric(names.OTA_FAILURE_PCT, "%"))
    by_code: Mapping[str, int] = field(default_factory=dict)
    error_codes: Mapping[str, int] = field(default_factory=dict)
    stages: Mapping[str, int] = field(default_factory=dict)
    time_to_ack_ms: OtaTimes = OtaTimes()
    time_to_final_ms: OtaTimes = OtaTimes()
    stuck_operations: tuple[KeyRow, ...] = ()


@dataclass(frozen=True)
class AccountingSummary:
    """The send/arrival join; event lists are truncated (the CSV logs hold them all)."""

    planned: int = 0
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    late: int = 0
    unexpected: int = 0
    duplicate_sends: int = 0
    lost_reasons: Mapping[str, int] = field(default_factory=dict)
    lost_events: tuple[KeyRow, ...] = ()
    duplicated_events: tuple[KeyRow, ...] = ()
    reordered_events: tuple[KeyRow, ...] = ()
    unexpected_events: tuple[KeyRow, ...] = ()
    late_events: tuple[KeyRow, ...] = ()


@dataclass(frozen=True)
class ClockOffsetSummary:
    estimate_ms: float = 0.0
    samples: int = 0
    observer_behind: bool = False
    meaning: str = ""


@dataclass(frozen=True)
class JoinSummary:
    """The run's fence and the join's sanity (simulator.observers.fence, simulator.metrics.join_check)."""

    fence: str = ""  # how the fence was taken: "collector cursor" | "trigger mark"
    fence_at: float | None = None  # observer wall s of the mark
    fence_cursor: int = 0  # arrival-log rows before the mark (never joined)
    ignored_before_run: int = 0  # messages the observer set aside as an earlier run's
    offset_ms: float = 0.0  # observer minus generator clock, measured at the mark
    uncertainty_ms: float = 0.0
    pairs: int = 0  # joined events checked
    impossible: int = 0  # arrived before sent beyond offset +- allowance => verdict invalid_join
    worst_ms: float | None = None
    allowance_ms: float = 0.0
    examples: tuple[KeyRow, ...] = ()  # a few impossible pairs' keys


@dataclass(frozen=True)
class Environment:
    """Where the numbers were measured: results from different machines are not comparable as-is."""

    python: str = ""
    implementation: str = ""
    platform: str = ""
    cpu_count: int | None = None
    cpu_model: str = ""
    hostname_hash: str = ""
    versions: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FaultCaused:
    """What an injected fault caused: events in its window on the devices it hit (simulator.metrics.faults)."""

    errors: int = 0  # publish/ack errors
    lost: int = 0
    lost_reasons: Mapping[str, int] = field(default_factory=dict)
    window_s: tuple[float, float] | None = None  # wall seconds [from, to] the attribution used


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault as it happened (simulator.faults); kind-specific measurements sit in `details`."""

    kind: str = ""
    at: float = 0.0
    duration: float = 0.0
    devices: int = 0
    params: Mapping[str, JsonValue] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    affected: int = 0
    errors: tuple[str, ...] = ()
    cut: bool = False
    caused: FaultCaused | None = field(default=None, metadata={OMIT_EMPTY: True})
    details: Mapping[str, JsonValue] = field(default_factory=dict, metadata={FLATTEN: True})


@dataclass(frozen=True)
class PlanNotes:
    operations: int = 0
    dropped_operations: int = 0
    in_flight_at_cut: int = 0


@dataclass(frozen=True)
class RunNotes:
    """summary.json `extra`: what ran and how (target redacted: no secret), and engine-specific notes."""

    target: Mapping[str, JsonValue] = field(default_factory=dict)
    broker: str = ""  # mosquitto | amqtt | target
    broker_version: str = ""  # as the broker reports it ("" when unknown: a real Astarte's VerneMQ)
    broker_label: str = ""  # what carried the run, for people: "mosquitto 2.0.11"
    # The embedded broker's TLS (simulator.broker_tls: "astarte" | "openssl"); "" for a real Astarte's broker
    # and in a summary written before the field existed.
    broker_tls: str = ""
    broker_warning: str = ""  # set when the pip-only broker carried a latency figure
    reason: str = ""
    fleet: Mapping[str, int | float] = field(default_factory=dict)
    # Devices that never came online, by id, with the reason (the first 50; `fleet.failed` counts them all).
    failed_devices: Mapping[str, str] = field(default_factory=dict, metadata={OMIT_EMPTY: True})
    not_attempted: int | None = None
    not_attempted_reason: str = ""
    plan: PlanNotes | None = None
    arrival_phase: str = ""
    faults: tuple[FaultRecord, ...] | None = field(default=None, metadata={OMIT_EMPTY: True})
    other: Mapping[str, JsonValue] = field(default_factory=dict, metadata={FLATTEN: True})


@dataclass(frozen=True)
class ThresholdResult:
    """One threshold: `pass`, `fail`, or `unknown` (its metric had no value; `reason` says why)."""

    metric: str
    threshold: str
    observed: float | None
    ok: bool  # False only when it fails the gate (an `unknown` fails only with on_missing: fail)
    reason: str = ""
    unit: str = ""
    status: Literal["pass", "fail", "unknown"] = "pass"

    def __post_init__(self) -> None:
        if self.status == "pass" and not self.ok:  # a summary from before `status` existed: ok=false is a fail
            object.__setattr__(self, "status", "fail")


@dataclass(frozen=True)
class ThresholdReport:
    passed: bool = True
    on_missing: Literal["fail", "skip"] = "skip"
    results: tuple[ThresholdResult, ...] = ()

    @property
    def breached(self) -> tuple[ThresholdResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def unknown(self) -> tuple[ThresholdResult, ...]:
        return tuple(r for r in self.results if r.status == "unknown")


@dataclass(frozen=True)
class RunSummary:
    """The whole summary.json, schema `SCHEMA_VERSION`. `from_json`/`to_json` keep its JSON shape."""

    scenario: str
    seed: int
    started_at: str  # ISO 8601 UTC
    started_at_epoch: float
    duration_s: float
    devices: int
    transport: str
    target: str
    schema_version: int = SCHEMA_VERSION
    partial: bool = False
    events: Events = Events()
    rate: Rates = Rates()
    latency_ms: Latency = Latency()
    latency_trustworthy: bool = True
    latency_untrusted_reason: str | None = None
    lost_reasons: Mapping[str, int] | None = None
    accounting: AccountingSummary | None = None
    ota: OtaSummary = OtaSummary()
    generator: GeneratorSummary = GeneratorSummary()
    clock_offset: ClockOffsetSummary | None = None
    verdict: str = "ok"
    verdict_reasons: tuple[str, ...] = ()
    environment: Environment = Environment()
    extra: RunNotes | None = field(default=None, metadata={OMIT_EMPTY: True})
    thresholds: ThresholdReport | None = field(default=None, metadata={OMIT_EMPTY: True})
    join: JoinSummary | None = field(default=None, metadata={OMIT_EMPTY: True})

    def to_json(self) -> dict[str, JsonValue]:
        out = to_json(self)
        assert isinstance(out, dict)
        # schema_version first, as summary.json always had it
        return {"schema_version": out.pop("schema_version"), **out}

    @classmethod
    def from_json(cls, data: object, source: str = "summary.json") -> RunSummary:
        return from_json(cls, data, source)

    @property
    def faults(self) -> tuple[FaultRecord, ...]:
        return self.extra.faults or () if self.extra is not None else ()

    @property
    def broker(self) -> str:
        return self.extra.broker if self.extra is not None else ""

    @property
    def broker_label(self) -> str:
        """The broker that carried the run (runs written before broker_label: the broker's kind)."""
        if self.extra is None:
            return "not recorded"
        return self.extra.broker_label or self.extra.broker or "not recorded"

    @property
    def broker_tls(self) -> str:
        """The embedded broker's TLS choice ("" for a real Astarte and in summaries written before it)."""
        return self.extra.broker_tls if self.extra is not None else ""

    @property
    def broker_warning(self) -> str:
        return self.extra.broker_warning if self.extra is not None else ""
