"""Per-event accounting: the send log joined with the arrival log on EventKey (docs/design.md principle 7).

Every planned event ends in exactly one outcome:
  delivered  first seen by the observer no later than run end + grace
  late       first seen after run end + grace (neither delivered nor lost)
  lost       never seen, with a reason: publish_failed (sent is None: publish raised), never_acked (left
             the device, no PUBCOMP/PUBACK), acked_not_arrived (the broker acked it, the observer
             never saw it).
Besides the outcome, arrivals are checked for: duplicated (each extra copy of a key counts once), reordered
(per device, an event first seen after an event that was sent later; counted on the overtaken event) and
unexpected (an arrival whose key is in no send record: counted and listed, never dropped silently).

Cost: one dict build and one pass over the arrivals in Python, latencies in numpy, after the run (100,000
events in ~0.3 s: test_accounting.py). On the hot path accounting is only the send log (one SendRecord kept per
event, ~350 bytes): ~1 us CPU per event, ~0.25% of lean's ~394 us per publish, against issue 6's 5% goal
(test_recorder.py::test_accounting_costs_well_under_5pct_of_a_lean_publish).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulator.events import EventKey
from simulator.metrics import names
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.run_summary import AccountingSummary
from simulator.records import ArrivalRecord, SendRecord

__all__ = ["DELIVERED", "LATE", "LOST_CODES", "Accounting", "account"]

# Outcome codes of `Accounting.outcome` (one per send record).
DELIVERED = 0
LATE = 1
LOST_CODES = {names.LOST_PUBLISH_FAILED: 2, names.LOST_NEVER_ACKED: 3, names.LOST_ACKED_NOT_ARRIVED: 4}
_LOST_NAMES = {code: name for name, code in LOST_CODES.items()}

FloatArray = npt.NDArray[np.float64]


@dataclass
class Accounting:
    """The result of the join. Arrays are aligned with the send log (`outcome`, `first_arrival`)."""

    planned: int = 0  # send records (distinct keys)
    sent: int = 0  # left the device (sent is not None and no publish error)
    acked: int = 0
    delivered: int = 0
    late: int = 0
    lost: int = 0
    duplicated: int = 0  # extra copies
    reordered: int = 0
    unexpected: int = 0
    duplicate_sends: int = 0  # the send log itself had a key twice (a generator bug; first kept)
    lost_reasons: dict[str, int] = field(default_factory=lambda: dict.fromkeys(names.LOST_REASONS, 0))
    lost_events: list[tuple[EventKey, str]] = field(default_factory=list)
    duplicated_events: dict[EventKey, int] = field(default_factory=dict)  # key -> extra copies
    reordered_events: list[EventKey] = field(default_factory=list)
    reordered_by_device: dict[str, int] = field(default_factory=dict)
    unexpected_events: list[EventKey] = field(default_factory=list)
    late_events: list[EventKey] = field(default_factory=list)
    outcome: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    intended: FloatArray = field(default_factory=lambda: np.zeros(0))
    sent_at: FloatArray = field(default_factory=lambda: np.zeros(0))  # nan when never sent
    first_arrival: FloatArray = field(default_factory=lambda: np.zeros(0))  # nan when never seen
    device_t: FloatArray = field(default_factory=lambda: np.zeros(0))  # arrived `t` in s, nan when absent
    end: float = 0.0
    grace: float = 0.0

    def outcome_name(self, index: int) -> str:
        code = int(self.outcome[index])
        return "delivered" if code == DELIVERED else "late" if code == LATE else _LOST_NAMES[code]

    def latencies_s(self) -> dict[str, tuple[FloatArray, FloatArray]]:
        """path -> (arrival times, latency s) of delivered events: e2e, e2e_corrected, e2e_device_t."""
        ok = self.outcome == DELIVERED
        arrival = self.first_arrival[ok]
        sent = self.sent_at[ok]
        has_sent = ~np.isnan(sent)
        has_t = ~np.isnan(self.device_t[ok])
        return {
            names.PATH_E2E: (arrival[has_sent], (arrival - sent)[has_sent]),
            names.PATH_E2E_CORRECTED: (arrival, arrival - self.intended[ok]),
            names.PATH_E2E_DEVICE_T: (arrival[has_t], (arrival - self.device_t[ok])[has_t]),
        }

    def histograms(self) -> HistogramSet:
        """HDR histograms of the e2e paths (negative values clamped and counted: clock offset)."""
        out = HistogramSet()
        for path, (_, values) in self.latencies_s().items():
            hist = out.get(path)
            for us in np.rint(values * 1_000_000).astype(np.int64).tolist():
                hist.record_us(us, "observer_clock_behind")
        return out

    def to_summary(self, max_listed: int = 100) -> AccountingSummary:
        """The accounting part of summary.json (event lists truncated to `max_listed`)."""
        return AccountingSummary(
            planned=self.planned, sent=self.sent, acked=self.acked, delivered=self.delivered, lost=self.lost,
            duplicated=self.duplicated, reordered=self.reordered, late=self.late, unexpected=self.unexpected,
            duplicate_sends=self.duplicate_sends, lost_reasons=dict(self.lost_reasons),
            lost_events=tuple((*key, reason) for key, reason in self.lost_events[:max_listed]),
            duplicated_events=tuple((*key, n) for key, n in list(self.duplicated_events.items())[:max_listed]),
            reordered_events=tuple(self.reordered_events[:max_listed]),
            unexpected_events=tuple(self.unexpected_events[:max_listed]),
            late_events=tuple(self.late_events[:max_listed]))


def _lost_reason(rec: SendRecord) -> str:
    """Why an event that never arrived was lost. The generator's contract (recorder.py): a publish that raised
    keeps `sent=None` with its error; an error with `sent` set came from the ack callback (session lost)."""
    if rec.sent is None:
        return names.LOST_PUBLISH_FAILED
    if rec.acked is None:
        return names.LOST_NEVER_ACKED
    return names.LOST_ACKED_NOT_ARRIVED


def account(sends: Sequence[SendRecord], arrivals: Sequence[ArrivalRecord], end: float,
            grace: float = 0.0) -> Accounting:
    """Join the logs. `end` is the run's end (wall s); arrivals after `end + grace` are `late`."""
    acc = Accounting(end=end, grace=grace)
    index: dict[EventKey, int] = {}
    keep: list[SendRecord] = []
    for rec in sends:
        if rec.key in index:
            acc.duplicate_sends += 1
            continue
        index[rec.key] = len(keep)
        keep.append(rec)
    n = len(keep)
    acc.planned = n
    nan = float("nan")
    acc.intended = np.fromiter((r.intended for r in keep), np.float64, n)
    acc.sent_at = np.fromiter((nan if r.sent is None else r.sent for r in keep), np.float64, n)
    acc.sent = sum(1 for r in keep if r.sent is not None)
    acc.acked = sum(1 for r in keep if r.acked is not None and r.sent is not None)

    # Send rank per device: order of (sent, else intended), ties broken by position in the log.
    when = np.where(np.isnan(acc.sent_at), acc.intended, acc.sent_at)
    rank = np.zeros(n, np.int64)
    per_device: dict[str, list[int]] = {}
    for i, rec in enumerate(keep):
        per_device.setdefault(rec.key[0], []).append(i)
    for members in per_device.values():
        order = sorted(members, key=lambda i: (when[i], i))
        for r, i in enumerate(order):
            rank[i] = r

    first = np.full(n, nan)
    device_t = np.full(n, nan)
    times = np.fromiter((a.arrival for a in arrivals), np.float64, len(arrivals))
    deadline = end + grace
    high_rank: dict[str, int] = {}
    sent_bases = {rec.key[:4] for rec in keep}
    for j in np.argsort(times, kind="stable").tolist():
        arr = arrivals[j]
        pos = index.get(arr.key)
        if pos is None:
            base = arr.key[:4]
            if base in sent_bases:
                # The observer numbers every arrival of the same (device, uuid, status, progress) as a new
                # occurrence, so a re-delivery of an event already sent (a QoS 1/2 resend after a reconnect, a
                # duplicate-send fault) arrives with an occurrence nobody sent: a duplicate, not a stranger.
                acc.duplicated += 1
                acc.duplicated_events[arr.key] = acc.duplicated_events.get(arr.key, 0) + 1
                continue
            acc.unexpected += 1
            acc.unexpected_events.append(arr.key)
            continue
        if not np.isnan(first[pos]):
            acc.duplicated += 1
            acc.duplicated_events[arr.key] = acc.duplicated_events.get(arr.key, 0) + 1
            continue
        first[pos] = arr.arrival
        if arr.t_ms is not None:
            device_t[pos] = arr.t_ms / 1000
        device = arr.key[0]
        seen = high_rank.get(device, -1)
        if rank[pos] < seen:
            acc.reordered += 1
            acc.reordered_events.append(arr.key)
            acc.reordered_by_device[device] = acc.reordered_by_device.get(device, 0) + 1
        else:
            high_rank[device] = int(rank[pos])

    outcome = np.zeros(n, np.int8)
    seen_mask = ~np.isnan(first)
    late_mask = seen_mask & (first > deadline)
    outcome[late_mask] = LATE
    for i in np.flatnonzero(late_mask).tolist():
        acc.late_events.append(keep[i].key)
    for i in np.flatnonzero(~seen_mask).tolist():
        reason = _lost_reason(keep[i])
        outcome[i] = LOST_CODES[reason]
        acc.lost_reasons[reason] += 1
        acc.lost_events.append((keep[i].key, reason))
    acc.outcome = outcome
    acc.first_arrival = first
    acc.device_t = device_t
    acc.late = int(late_mask.sum())
    acc.delivered = int(seen_mask.sum()) - acc.late
    acc.lost = n - int(seen_mask.sum())
    return acc
