"""What a worker's closed books send the master: aggregates and unmatched keys, never the per-event logs.

A worker joins its own devices' events (its partition) and ships, in its final Locust message: the join's
counters, HDR-encoded e2e histograms (totals and per second), delivered/lost per second, the listed keys
(capped: SHIPPED_KEYS, SHIPPED_EXAMPLES, SHIPPED_ERRORS; counters stay exact), the OTA funnel's aggregates and
the (device, time) of its send errors. The per-event logs stay in the worker's spool dir; the master merges
those files into the run's folder when it can read them (same machine or shared disk). The join's sealed
seconds travel with the worker's periodic reports (OnlineJoin.take_sealed, merged on the master as they come:
`streamed`), so the final message holds only the last open seconds: it grows neither with the run's events
nor with its length (issue 14).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.events import EventKey
from simulator.metrics.accounting import Accounting, accounting_of
from simulator.metrics.books import RunBooks
from simulator.metrics.funnel import Funnel, OperationId
from simulator.metrics.histograms import HistogramSet, LatencyHistogram
from simulator.metrics.join_check import JoinCheck
from simulator.metrics.second_bucket import SecondBucket
from simulator.metrics.seconds_inbox import SecondsInbox

__all__ = ["JoinedBooks", "books_export", "merge_books"]

# Caps on what a worker lists in its final message, sized so that the worst case stays well under issue 14's
# 1 MB per worker (msgpack sizes measured for 36-char uuids): lost keys with reason and time, which fault
# attribution reads, 2,000 x 87 B = 174 KB; example keys (duplicated, reordered, unexpected, late, stuck
# operations; the summary lists 100 of each) 5 x 500 x ~66 B = 165 KB; send errors (device, time), also for
# fault attribution, 10,000 x 23 B = 230 KB. Counters stay exact (`errors_total`, the accounting's counters).
SHIPPED_KEYS = 2_000
SHIPPED_EXAMPLES = 500
SHIPPED_ERRORS = 10_000
VERSION = 1


@dataclass(frozen=True)
class JoinedBooks:
    """Every worker's books merged on the master: what finish_run needs instead of the send log."""

    accounting: Accounting | None
    funnel: Funnel
    errors: tuple[tuple[str, float], ...]  # (device, wall s) of each send error
    logs: tuple[tuple[Path, Path], ...]  # (events.sent.csv, events.arrivals.csv) of each worker
    join: JoinCheck | None = None  # the workers' join checks summed (invalid_join), None when none joined
    # Arrivals of events a worker's join had stopped waiting for (OnlineJoin.evicted_then_arrived): the observer
    # fell behind the join's windows. Counted as batch would (delivered or late); this only says so.
    evicted_then_arrived: int = 0


def _key(cells: Sequence[Any]) -> EventKey:
    return (str(cells[0]), str(cells[1]), str(cells[2]), int(cells[3]), int(cells[4]))


def _funnel_export(funnel: Funnel) -> dict[str, Any]:
    return {"operations": funnel.operations, "success": funnel.success, "failure": funnel.failure,
            "stuck": funnel.stuck, "cut": funnel.cut, "by_code": funnel.by_code, "error_codes": funnel.error_codes,
            "stages": funnel.stages, "time_to_ack": funnel.time_to_ack.encode(),
            "time_to_final": funnel.time_to_final.encode(),
            "stuck_operations": [list(op) for op in funnel.stuck_operations[:SHIPPED_EXAMPLES]]}


def books_export(books: RunBooks, end: float, grace: float, cut: frozenset[OperationId]) -> dict[str, Any]:
    """Close `books` (if open) and describe them for the master (JSON-able)."""
    if not books.closed:
        books.close(end, grace)
    out: dict[str, Any] = {"version": VERSION, "funnel": _funnel_export(books.funnel.build(cut)),
                           "errors": [[d, t] for d, t in books.errors[:SHIPPED_ERRORS]],
                           "errors_total": len(books.errors),
                           "logs": [str(books.sent_path), str(books.arrivals_path)]}
    if books.join is not None:
        acc = accounting_of(books.join, end, grace)
        out["accounting"] = {
            "counters": {k: getattr(acc, k) for k in ("planned", "sent", "acked", "delivered", "late", "lost",
                                                     "duplicated", "reordered", "unexpected", "duplicate_sends")},
            "lost_reasons": acc.lost_reasons,
            "lost": [[*key, reason, when] for (key, reason), when
                     in list(zip(acc.lost_events, acc.lost_when, strict=True))[:SHIPPED_KEYS]],
            "duplicated": [[*key, n] for key, n in list(acc.duplicated_events.items())[:SHIPPED_EXAMPLES]],
            "reordered": [list(k) for k in acc.reordered_events[:SHIPPED_EXAMPLES]],
            "reordered_by_device": acc.reordered_by_device,
            "unexpected": [list(k) for k in acc.unexpected_events[:SHIPPED_EXAMPLES]],
            "late": [list(k) for k in acc.late_events[:SHIPPED_EXAMPLES]],
            "e2e": acc.e2e.export(), "start": acc.start, "offset_min": acc.offset_min,
            "offset_samples": acc.offset_samples, "evicted_then_arrived": books.join.evicted_then_arrived,
            "seconds": {str(s): {"counts": {k: v for k, v in b.counts.items() if v}, "hdr": dict(b.sealed)}
                        for s, b in acc.items()},
        }
        check = books.join.check.result()
        out["join_check"] = {"pairs": check.pairs, "impossible": check.impossible, "worst_s": check.worst_s,
                             "offset_s": check.offset_s, "allowance_s": check.allowance_s,
                             "examples": [list(k) for k in check.examples]}
    return out


def _merge_checks(checks: Sequence[Mapping[str, Any]]) -> JoinCheck | None:
    """Every worker's join check as one: pairs and impossible pairs summed, the worst of the worst."""
    if not checks:
        return None
    worst = [float(c["worst_s"]) for c in checks if c.get("worst_s") is not None]
    return JoinCheck(pairs=sum(int(c["pairs"]) for c in checks), impossible=sum(int(c["impossible"]) for c in checks),
                     worst_s=min(worst) if worst else None, offset_s=float(checks[0]["offset_s"]),
                     allowance_s=max(float(c["allowance_s"]) for c in checks),
                     examples=tuple(_key(k) for c in checks for k in c["examples"])[:5])


def _merge_funnel(into: Funnel, data: Mapping[str, Any]) -> None:
    for name in ("operations", "success", "failure", "stuck", "cut"):
        setattr(into, name, getattr(into, name) + int(data[name]))
    for attr in ("by_code", "error_codes", "stages"):
        target: dict[str, int] = getattr(into, attr)
        for k, v in dict(data[attr]).items():
            target[k] = target.get(k, 0) + int(v)
    into.time_to_ack.add(LatencyHistogram.decode(into.time_to_ack.name, str(data["time_to_ack"])))
    into.time_to_final.add(LatencyHistogram.decode(into.time_to_final.name, str(data["time_to_final"])))
    into.stuck_operations.extend((str(d), str(u)) for d, u in data["stuck_operations"])


def _merge_accounting(acc: Accounting, data: Mapping[str, Any], start: float) -> None:
    for k, v in dict(data["counters"]).items():
        setattr(acc, k, getattr(acc, k) + int(v))
    for k, v in dict(data["lost_reasons"]).items():
        acc.lost_reasons[k] = acc.lost_reasons.get(k, 0) + int(v)
    for cells in data["lost"]:
        acc.lost_events.append((_key(cells), str(cells[5])))
        acc.lost_when.append(float(cells[6]))
    for cells in data["duplicated"]:
        key = _key(cells)
        acc.duplicated_events[key] = acc.duplicated_events.get(key, 0) + int(cells[5])
    acc.reordered_events.extend(_key(c) for c in data["reordered"])
    for k, v in dict(data["reordered_by_device"]).items():
        acc.reordered_by_device[k] = acc.reordered_by_device.get(k, 0) + int(v)
    acc.unexpected_events.extend(_key(c) for c in data["unexpected"])
    acc.late_events.extend(_key(c) for c in data["late"])
    acc.e2e.add(HistogramSet.from_export(data["e2e"]))
    if data.get("offset_min") is not None:
        value = float(data["offset_min"])
        acc.offset_min = value if acc.offset_min is None else min(acc.offset_min, value)
    acc.offset_samples += int(data.get("offset_samples", 0))
    shift = round(float(data["start"]) - start)
    for key, item in dict(data["seconds"]).items():
        second = max(0, int(key) + shift)
        bucket = acc.seconds.get(second)
        if bucket is None:
            bucket = acc.seconds[second] = SecondBucket()
            bucket.counts["lost"] = 0
        for counter, n in dict(item["counts"]).items():
            bucket.counts[counter] = bucket.counts.get(counter, 0) + int(n)
        for path, blob in dict(item["hdr"]).items():
            hist = LatencyHistogram.decode(path, str(blob))
            if path in bucket.sealed:
                hist.add(LatencyHistogram.decode(path, bucket.sealed[path]))
            bucket.put(path, hist)


def merge_books(exports: Sequence[Mapping[str, Any]], start: float, end: float, grace: float,
                streamed: Iterable[SecondsInbox] = ()) -> JoinedBooks:
    """The workers' books as one (per-second results re-aligned on `start`, the master's recorder start);
    `streamed`: the join seconds workers shipped with their periodic reports (issue 14), read with the rest."""
    funnel = Funnel()
    errors: list[tuple[str, float]] = []
    logs: list[tuple[Path, Path]] = []
    acc: Accounting | None = None
    checks: list[Mapping[str, Any]] = []
    behind = 0
    for data in exports:
        _merge_funnel(funnel, data["funnel"])
        errors.extend((str(d), float(t)) for d, t in data["errors"])
        sent, arrived = data["logs"]
        logs.append((Path(sent), Path(arrived)))
        if "join_check" in data:
            checks.append(data["join_check"])
        if "accounting" in data:
            if acc is None:
                acc = Accounting(start=start, end=end, grace=grace)
            _merge_accounting(acc, data["accounting"], start)
            behind += int(data["accounting"].get("evicted_then_arrived", 0))  # absent: a worker from before
    if acc is not None:
        for inbox in streamed:  # read in order at the end with the rest (Accounting.items), not copied here
            acc.inboxes.append((inbox, round(inbox.start - start)))
    return JoinedBooks(accounting=acc, funnel=funnel, errors=tuple(errors), logs=tuple(logs),
                       join=_merge_checks(checks), evicted_then_arrived=behind)
