"""Campaign metrics from the devices' side of a backend-driven run (mode responder / campaign), pure.

Each device keeps one `OperationTrace` per OTARequest uuid it was sent (`ResponderLog`). Times are wall-clock
seconds since the epoch:
- `requested_at`: the first OTARequest with that uuid reached the device (the transport handed it over);
- `acked_at`: the broker acknowledged (QoS 2 PUBCOMP) the device's Acknowledged event for it;
- `final_at`: the broker acknowledged its Success or Failure (`final_sent_at`: when the device sent it).
So request->Acknowledged is what a backend waits for between the request reaching the device and the answer
being accepted by the broker (device work + one broker round trip), independent of how the backend sent it.

`campaign_report(...)` turns the traces (and, when a campaign driver or Edgehog recorded its own view, the
backend's final status per operation) into a frozen `CampaignReport`: latency summaries, in-flight slots per
second against `max_in_progress`, retries seen (the same uuid re-sent), timeouts, and state convergence
(simulator.metrics.convergence).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.download import DownloadOutcome
from simulator.metrics.convergence import BackendOperation, Convergence, converge
from simulator.metrics.downloads import DownloadSummary, DownloadTally
from simulator.metrics.quantile_tally import QuantileTally

__all__ = [
    "CampaignReport",
    "CampaignTally",
    "LatencySummary",
    "OperationRecord",
    "OperationTrace",
    "ResponderLog",
    "campaign_report",
    "fold_operations",
    "merge_operation",
    "slots_per_second",
]

FINAL_STATUSES = ("Success", "Failure")


@dataclass(slots=True)
class OperationTrace:
    """One operation as one device lived it (mutable while the run goes on; `record()` freezes it)."""

    device: str
    uuid: str
    requested_at: float
    operation: str = "Update"  # the first request's operation ("Cancel" for an unknown-uuid Cancel)
    updates: int = 0  # Update requests with this uuid received (retries seen = updates - 1)
    cancels: int = 0
    acked_at: float | None = None
    final_at: float | None = None
    last_status: str = ""  # the last OTAEvent status the device published for this uuid
    last_code: str = ""
    final_sent_at: float | None = None
    download: DownloadStats | None = None  # `download: fetch` only

    def record(self) -> OperationRecord:
        return OperationRecord(self.device, self.uuid, self.requested_at, self.operation, self.updates,
                               self.cancels, self.acked_at, self.final_at, self.last_status, self.last_code,
                               self.final_sent_at, self.download)


@dataclass(frozen=True)
class DownloadStats:
    """The real download of one operation (`download: fetch`): attempts, and the complete one's transfer."""

    attempts: int = 0
    errors: tuple[str, ...] = ()  # each failed attempt's reason ("short_read", "connect: ...", ...)
    bytes: int = 0  # body bytes of the complete attempt (0: none completed)
    seconds: float = 0.0  # its duration: request sent -> last byte
    done_at: float = 0.0  # wall time it completed
    http_status: int = 0

    def add(self, outcome: DownloadOutcome, at: float) -> DownloadStats:
        if not outcome.ok:
            return DownloadStats(self.attempts + 1, (*self.errors, outcome.error), self.bytes, self.seconds,
                                 self.done_at, outcome.status)
        return DownloadStats(self.attempts + 1, self.errors, outcome.received, outcome.seconds, at,
                             outcome.status)


@dataclass(frozen=True)
class OperationRecord:
    device: str
    uuid: str
    requested_at: float
    operation: str
    updates: int
    cancels: int
    acked_at: float | None
    final_at: float | None
    last_status: str
    last_code: str
    final_sent_at: float | None = None
    download: DownloadStats | None = None

    @property
    def retries_seen(self) -> int:
        return max(0, self.updates - 1)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        if self.download is not None:
            doc["download"]["errors"] = list(self.download.errors)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OperationRecord:
        """From `to_json()` (worker exports cross a process boundary as JSON-like dicts)."""
        return cls(str(doc["device"]), str(doc["uuid"]), float(doc["requested_at"]), str(doc["operation"]),
                   int(doc["updates"]), int(doc["cancels"]), _opt(doc.get("acked_at")), _opt(doc.get("final_at")),
                   str(doc["last_status"]), str(doc["last_code"]), _opt(doc.get("final_sent_at")),
                   _download(doc.get("download")))


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _download(doc: Any) -> DownloadStats | None:
    if not isinstance(doc, Mapping):
        return None
    return DownloadStats(int(doc["attempts"]), tuple(str(e) for e in doc["errors"]), int(doc["bytes"]),
                         float(doc["seconds"]), float(doc["done_at"]), int(doc["http_status"]))


class ResponderLog:
    """One device's traces, by uuid. Fed by the device: a request arrived, an OTAEvent left, one was acked."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.traces: dict[str, OperationTrace] = {}

    def request(self, operation: str, uuid: str, at: float) -> None:
        trace = self.traces.get(uuid)
        if trace is None:
            trace = self.traces[uuid] = OperationTrace(self.device, uuid, at, operation)
        if operation == "Update":
            trace.updates += 1
        else:
            trace.cancels += 1

    def published(self, uuid: str, status: str, code: str, at: float) -> None:
        trace = self.traces.get(uuid)
        if trace is not None:
            trace.last_status, trace.last_code = status, code
            if status in FINAL_STATUSES and trace.final_sent_at is None:
                trace.final_sent_at = at

    def acked(self, uuid: str, status: str, at: float) -> None:
        trace = self.traces.get(uuid)
        if trace is None:
            return
        if status == "Acknowledged" and trace.acked_at is None:
            trace.acked_at = at
        elif status in FINAL_STATUSES and trace.final_at is None:
            trace.final_at = at

    def download(self, uuid: str, outcome: DownloadOutcome, at: float) -> None:
        trace = self.traces.get(uuid)
        if trace is not None:
            trace.download = (trace.download or DownloadStats()).add(outcome, at)

    def records(self) -> list[OperationRecord]:
        return [t.record() for t in self.traces.values()]

    def take_closed(self) -> list[OperationRecord]:
        """The operations whose final status the broker acknowledged, frozen and forgotten here (issue 14: a
        worker ships them with its periodic report, so its memory holds the operations in flight, not every
        one it answered). A later request with the same uuid (a retry after the final) opens a new trace; the
        receiver folds the two with `merge_operation`."""
        closed = [uuid for uuid, t in self.traces.items() if t.final_at is not None]
        return [self.traces.pop(uuid).record() for uuid in closed]


def merge_operation(a: OperationRecord, b: OperationRecord) -> OperationRecord:
    """Two pieces of one (device, uuid) operation (shipped before and after a retry re-opened it) as one: the
    first request and its operation, requests summed, the earliest ack/final times, the latest status."""
    first, later = (a, b) if a.requested_at <= b.requested_at else (b, a)
    return OperationRecord(
        first.device, first.uuid, first.requested_at, first.operation, a.updates + b.updates, a.cancels + b.cancels,
        _earliest(a.acked_at, b.acked_at), _earliest(a.final_at, b.final_at),
        later.last_status or first.last_status, later.last_code if later.last_status else first.last_code,
        _earliest(a.final_sent_at, b.final_sent_at), first.download if first.download is not None else later.download)


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def fold_operations(into: dict[tuple[str, str], OperationRecord], records: Iterable[OperationRecord]) -> None:
    """Add records into `into` by (device, uuid), merging pieces of the same operation."""
    for record in records:
        key = (record.device, record.uuid)
        known = into.get(key)
        into[key] = record if known is None else merge_operation(known, record)


@dataclass(frozen=True)
class LatencySummary:
    """count and nearest-rank percentiles, milliseconds."""

    count: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> LatencySummary:
        tally = QuantileTally()
        for value in seconds:
            tally.add(value)
        return cls.of_tally(tally)

    @classmethod
    def of_tally(cls, tally: QuantileTally) -> LatencySummary:
        """From a tally of seconds: exact nearest ranks up to its EXACT_MAX values, its histogram's beyond."""
        if tally.count == 0 or tally.max is None:
            return cls(0, None, None, None, None)

        def ms(p: float) -> float:
            value = tally.rank(p)
            assert value is not None
            return round(value * 1000.0, 3)

        return cls(tally.count, ms(50), ms(90), ms(99), round(tally.max * 1000.0, 3))


@dataclass(frozen=True)
class CampaignReport:
    """What a backend-driven run measured about the campaign (or the OTARequests) it answered."""

    driver: str  # "embedded" | "edgehog" | "none" (responder: whoever sent the requests)
    operations: int  # distinct (device, uuid) the devices were sent
    answered: int  # of which the device published a final status (Success/Failure)
    request_to_ack: LatencySummary
    request_to_final: LatencySummary
    campaign_duration_s: float | None  # first request at a device -> last final acked
    max_in_progress: int | None  # the campaign's limit, when fleetsim drove it
    in_flight_per_s: tuple[int, ...]  # operations between request and final, sampled each second
    peak_in_flight: int
    retries_seen: int  # requests re-sent with a uuid the device already had
    operations_retried: int
    timeouts: int | None  # operations the backend gave up on (None: no backend view)
    backend_status: str | None  # the campaign's own outcome as the backend reported it
    convergence: Convergence | None
    notes: tuple[str, ...] = field(default=())
    downloads: DownloadSummary | None = None  # `download: fetch` only

    @property
    def over_limit(self) -> bool:
        return self.max_in_progress is not None and self.peak_in_flight > self.max_in_progress

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["in_flight_per_s"] = list(self.in_flight_per_s)
        doc["over_limit"] = self.over_limit
        doc["notes"] = list(self.notes)
        doc["convergence"] = None if self.convergence is None else self.convergence.to_json()
        doc["downloads"] = None if self.downloads is None else self.downloads.to_json()
        return doc


def slots_per_second(records: Iterable[OperationRecord], end: float) -> tuple[int, ...]:
    """Operations in flight at each whole second from the first request to `end`: from the request reaching
    the device to the device sending its final status. The backend sent the request earlier and sees the
    final later, so this never counts more than the backend had in progress: a peak above max_in_progress
    is the backend's, not a measuring artefact.

    `records` is read twice (the first request, then the spans against it) and may be a spool on disk
    (simulator.metrics.operation_spool): memory holds one count per second, not one span per operation."""
    start: float | None = None
    last = end
    for r in records:
        if r.operation == "Update":
            start = r.requested_at if start is None else min(start, r.requested_at)
            last = max(last, r.final_sent_at if r.final_sent_at is not None else end)
    if start is None:
        return ()
    seconds = max(1, math.ceil(last - start))
    # Difference array: +1 where a span enters, -1 after its last second (in flight at t: begin <= t < finish).
    steps = [0] * (seconds + 1)
    for r in records:
        if r.operation != "Update":
            continue
        begin, finish = r.requested_at, r.final_sent_at if r.final_sent_at is not None else end
        first = math.ceil(begin - start) if begin > start else 0
        final = min(seconds - 1, math.ceil(finish - start) - 1)
        if final >= first:
            steps[first] += 1
            steps[final + 1] -= 1
    counts, running = [], 0
    for step in steps[:seconds]:
        running += step
        counts.append(running)
    return tuple(counts)


class CampaignTally:
    """The per-operation figures of a CampaignReport, one (whole, folded) operation at a time: counters and
    QuantileTally latencies, so the process writing the results holds no list of operations (issue 14)."""

    __slots__ = ("acks", "answered", "downloads", "finals", "first", "last_final", "operations",
                 "operations_retried", "retries_seen")

    def __init__(self) -> None:
        self.operations = self.answered = self.retries_seen = self.operations_retried = 0
        self.acks, self.finals = QuantileTally(), QuantileTally()  # seconds from request to ack / final
        self.first: float | None = None  # first request of an Update at a device, wall s
        self.last_final: float | None = None  # last final acked, wall s
        self.downloads = DownloadTally()

    def add(self, r: OperationRecord) -> None:
        if r.download is not None:
            self.downloads.add(r.download)
        if r.operation != "Update":
            return
        self.operations += 1
        self.answered += r.last_status in FINAL_STATUSES
        self.retries_seen += r.retries_seen
        self.operations_retried += r.retries_seen > 0
        if r.acked_at is not None:
            self.acks.add(r.acked_at - r.requested_at)
        if r.final_at is not None:
            self.finals.add(r.final_at - r.requested_at)
            self.last_final = r.final_at if self.last_final is None else max(self.last_final, r.final_at)
        self.first = r.requested_at if self.first is None else min(self.first, r.requested_at)


def campaign_report(
    records: Iterable[OperationRecord],
    *,
    end: float,
    driver: str = "none",
    max_in_progress: int | None = None,
    backend: Sequence[BackendOperation] | None = None,
    backend_status: str | None = None,
    timeout_codes: Iterable[str] = ("RequestTimeout",),
    tally: CampaignTally | None = None,
) -> CampaignReport:
    """Aggregate the devices' traces (`end`: the run's end, wall s) and the backend's view when there is one.

    `records` is read up to three times (tally, slots, convergence): a sequence, or a spool on disk with its
    `tally` already fed as it was written (simulator.metrics.operation_spool). Each (device, uuid) once."""
    if iter(records) is records:  # a one-shot iterator cannot be read again
        records = list(records)
    if tally is None:
        tally = CampaignTally()
        for record in records:
            tally.add(record)
    slots = slots_per_second(records, end)
    timeouts: int | None = None
    if backend is not None:
        codes = frozenset(timeout_codes)
        timeouts = sum(1 for b in backend if b.timed_out or b.status_code in codes)
    first, last_final = tally.first, tally.last_final
    return CampaignReport(
        driver=driver, operations=tally.operations, answered=tally.answered,
        request_to_ack=LatencySummary.of_tally(tally.acks), request_to_final=LatencySummary.of_tally(tally.finals),
        campaign_duration_s=None if first is None or last_final is None else round(last_final - first, 6),
        max_in_progress=max_in_progress, in_flight_per_s=slots, peak_in_flight=max(slots, default=0),
        retries_seen=tally.retries_seen, operations_retried=tally.operations_retried,
        timeouts=timeouts, backend_status=backend_status,
        convergence=None if backend is None else converge(records, backend),
        downloads=tally.downloads.summary())
