"""The OTA funnel: per operation (device, requestUUID), how far it got and how long it took.

Statuses and codes as in docs/protocol.md section 4 (edgehog-device-runtime src/ota/mod.rs): Success and Failure
are final (as Edgehog treats them, docs/protocol.md section 5), Error is recoverable (a retried download). An
operation with no final status when the run ends is `stuck` (what edgehog#1447 looks like from the backend).

Times: time_to_ack = first Acknowledged - start, time_to_final = first Success/Failure - start, where start is
the operation's request time when the caller knows it (`starts`, e.g. from the campaign driver), else the
earliest event time of the operation. Built from the send log (device view: events that left, at `sent`) or
from the arrival log (backend view: at `arrival`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from simulator.events import EventKey, OtaStatus
from simulator.metrics.histograms import LatencyHistogram
from simulator.metrics.run_summary import OtaSummary, OtaTimes
from simulator.records import ArrivalRecord, SendRecord

__all__ = [
    "FUNNEL_STAGES", "Funnel", "FunnelBuilder", "Operation", "build_funnel", "funnel_from_arrivals",
    "funnel_from_sends",
]

# Funnel stages in lifecycle order (the success path of docs/protocol.md section 4), then the final outcomes.
FUNNEL_STAGES = (
    OtaStatus.ACKNOWLEDGED, OtaStatus.DOWNLOADING, OtaStatus.DEPLOYING, OtaStatus.DEPLOYED,
    OtaStatus.REBOOTING, OtaStatus.SUCCESS, OtaStatus.FAILURE,
)
_FINAL = (str(OtaStatus.SUCCESS), str(OtaStatus.FAILURE))

OperationId = tuple[str, str]  # (device_id, requestUUID)


@dataclass
class Operation:
    device: str
    uuid: str
    start: float
    acknowledged: float | None = None
    final_at: float | None = None
    final_status: str | None = None
    final_code: str = ""
    statuses: set[str] = field(default_factory=set)
    errors: int = 0  # recoverable Error events (download retries)


@dataclass
class Funnel:
    operations: int = 0
    success: int = 0
    failure: int = 0
    stuck: int = 0
    cut: int = 0  # no final status because the run's bounds cut the operation (duration + graceful_stop)
    by_code: dict[str, int] = field(default_factory=dict)  # final Failure statusCode -> operations
    error_codes: dict[str, int] = field(default_factory=dict)  # recoverable Error statusCode -> events
    stages: dict[str, int] = field(default_factory=dict)  # status -> operations that reached it
    time_to_ack: LatencyHistogram = field(default_factory=lambda: LatencyHistogram("ota.time_to_ack"))
    time_to_final: LatencyHistogram = field(default_factory=lambda: LatencyHistogram("ota.time_to_final"))
    stuck_operations: list[OperationId] = field(default_factory=list)

    @property
    def failure_pct(self) -> float:
        """Failures among finished operations, percent (0 when none finished)."""
        done = self.success + self.failure
        return round(100.0 * self.failure / done, 3) if done else 0.0

    def to_summary(self, max_listed: int = 100) -> OtaSummary:
        ack = self.time_to_ack.summary_ms()
        final = self.time_to_final.summary_ms()
        return OtaSummary(
            operations=self.operations, success=self.success, failure=self.failure, stuck=self.stuck, cut=self.cut,
            failure_pct=self.failure_pct, by_code=dict(sorted(self.by_code.items())),
            error_codes=dict(sorted(self.error_codes.items())), stages=dict(self.stages),
            time_to_ack_ms=OtaTimes(p50=ack["p50"], p99=ack["p99"], max=ack["max"], count=ack["count"]),
            time_to_final_ms=OtaTimes(p50=final["p50"], p99=final["p99"], max=final["max"], count=final["count"]),
            stuck_operations=tuple(self.stuck_operations[:max_listed]))


class FunnelBuilder:
    """The funnel built one event at a time, in any order (the run's books feed it as events leave the
    devices). Memory is one Operation per open (device, requestUUID); `fold` moves operations whose final
    status is older than a window into the aggregates, so a long run keeps only the recent ones."""

    def __init__(self, starts: Mapping[OperationId, float] | None = None) -> None:
        self.starts = starts
        self.ops: dict[OperationId, Operation] = {}
        self.error_codes: dict[str, int] = {}
        self.folded = Funnel()  # operations already counted (fold), stages filled in as they come
        self.folded.stages = {str(s): 0 for s in FUNNEL_STAGES}
        self.hold_folding = False  # True until `starts` is known (an operation's start must not change)

    def add(self, key: EventKey, when: float, code: str) -> None:
        device, uuid, status = key[0], key[1], key[2]
        op_id = (device, uuid)
        op = self.ops.get(op_id)
        if op is None:
            # `starts` apply when it is counted; known already (a live run's), they apply now too: a live run's
            # starts keep only the recent operations (simulator.plan_cursor.PlannedStarts), and an operation's
            # first event comes seconds after its planned start, long before it is folded.
            start = when if self.starts is None else min(self.starts.get(op_id, when), when)
            op = self.ops[op_id] = Operation(device, uuid, start)
        elif when < op.start:
            op.start = when
        op.statuses.add(status)
        if status == OtaStatus.ACKNOWLEDGED:
            if op.acknowledged is None or when < op.acknowledged:
                op.acknowledged = when
        elif status == OtaStatus.ERROR:
            op.errors += 1
            self.error_codes[code or "none"] = self.error_codes.get(code or "none", 0) + 1
        elif status in _FINAL and (op.final_at is None or when < op.final_at):
            op.final_status, op.final_at, op.final_code = status, when, code

    def fold(self, before: float) -> int:
        """Count and forget the operations whose final status came before `before` (wall s). An event of a
        folded operation arriving later would open a new operation (the window makes that a >1 min straggler)."""
        if self.hold_folding and self.starts is None:
            return 0
        done = [op_id for op_id, op in self.ops.items() if op.final_at is not None and op.final_at < before]
        for op_id in done:
            self._count(self.folded, op_id, self.ops.pop(op_id), ())
        return len(done)

    def _count(self, funnel: Funnel, op_id: OperationId, op: Operation, cut: Collection[OperationId]) -> None:
        starts = self.starts or {}
        start = min(starts.get(op_id, op.start), op.start)
        funnel.operations += 1
        for status in op.statuses:
            if status in funnel.stages:
                funnel.stages[status] += 1
        if op.acknowledged is not None:
            funnel.time_to_ack.record_s(op.acknowledged - start)
        if op.final_status is None and op_id in cut:
            funnel.cut += 1
            return
        if op.final_status is None:
            funnel.stuck += 1
            funnel.stuck_operations.append(op_id)
            return
        assert op.final_at is not None
        funnel.time_to_final.record_s(op.final_at - start)
        if op.final_status == OtaStatus.SUCCESS:
            funnel.success += 1
        else:
            funnel.failure += 1
            funnel.by_code[op.final_code or "none"] = funnel.by_code.get(op.final_code or "none", 0) + 1

    def build(self, cut: Collection[OperationId] = ()) -> Funnel:
        """The funnel of everything added so far. An operation without a final status is `stuck`, unless the
        run's bounds cut it (`cut`): then it is counted as cut, not held against the backend."""
        old = self.folded
        funnel = Funnel(operations=old.operations, success=old.success, failure=old.failure, stuck=old.stuck,
                        cut=old.cut, by_code=dict(old.by_code), error_codes=dict(self.error_codes),
                        stages=dict(old.stages), stuck_operations=list(old.stuck_operations))
        funnel.time_to_ack.add(old.time_to_ack)
        funnel.time_to_final.add(old.time_to_final)
        for op_id, op in self.ops.items():
            self._count(funnel, op_id, op, cut)
        return funnel


def build_funnel(events: Iterable[tuple[EventKey, float, str]],
                 starts: Mapping[OperationId, float] | None = None,
                 cut: Collection[OperationId] = ()) -> Funnel:
    """Funnel from (key, time s, statusCode) triples in any order (see FunnelBuilder)."""
    builder = FunnelBuilder(starts)
    for key, when, code in sorted(events, key=lambda e: (e[1], e[0])):
        builder.add(key, when, code)
    return builder.build(cut)


def funnel_from_sends(sends: Iterable[SendRecord],
                      starts: Mapping[OperationId, float] | None = None,
                      cut: Collection[OperationId] = ()) -> Funnel:
    """The device's view: events that left the device (sent is not None), timed at `sent`."""
    return build_funnel(((r.key, r.sent, r.code) for r in sends if r.sent is not None), starts, cut)


def funnel_from_arrivals(arrivals: Iterable[ArrivalRecord],
                         starts: Mapping[OperationId, float] | None = None) -> Funnel:
    """The backend's view: events the observer saw, timed at `arrival` (duplicates count once per status)."""
    return build_funnel(((a.key, a.arrival, a.code) for a in arrivals), starts)
