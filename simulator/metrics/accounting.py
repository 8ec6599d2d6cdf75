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

The join itself is simulator.metrics.online_join.OnlineJoin (done while the run plays, in bounded memory);
`account` feeds it two whole logs (tests, replay of files). `Accounting` holds aggregates only: counters, the
listed keys, e2e histograms (totals and per arrival second) and lost per intended second.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from simulator.events import EventKey
from simulator.metrics import names
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.online_join import JoinWindows, OnlineJoin
from simulator.metrics.run_summary import AccountingSummary
from simulator.metrics.second_bucket import SecondBucket
from simulator.metrics.second_spool import SecondSpool, merge_items
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.records import ArrivalRecord, SendRecord

__all__ = ["Accounting", "account", "accounting_of"]


@dataclass
class Accounting:
    """The result of the join: counters, listed keys (up to online_join.LISTED_MAX each) and aggregates."""

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
    lost_when: list[float] = field(default_factory=list)  # aligned with lost_events: sent, else intended (s)
    duplicated_events: dict[EventKey, int] = field(default_factory=dict)  # key -> extra copies
    reordered_events: list[EventKey] = field(default_factory=list)
    reordered_by_device: dict[str, int] = field(default_factory=dict)
    unexpected_events: list[EventKey] = field(default_factory=list)
    late_events: list[EventKey] = field(default_factory=list)
    e2e: HistogramSet = field(default_factory=HistogramSet)  # e2e, e2e_corrected, e2e_device_t of delivered
    # second (since `start`) -> sealed bucket: counts["delivered"] by arrival second, counts["lost"] by intended
    # second, e2e histograms of the events delivered in that second (encoded, with p50/p99/max).
    seconds: dict[int, SecondBucket] = field(default_factory=dict)
    # More seconds of the same frame, read in order with `seconds` by `items` (issue 14: kept on disk while the
    # run plays): the local join's spool, and the master's inboxes of the seconds workers shipped, with the
    # whole-second shift of each into this frame.
    spool: SecondSpool | None = None
    inboxes: list[tuple[SecondsInbox, int]] = field(default_factory=list)
    start: float = 0.0
    offset_min: float | None = None  # min(arrival - sent) over arrivals of sent events (clock offset)
    offset_samples: int = 0
    end: float = 0.0
    grace: float = 0.0

    def items(self) -> Iterator[tuple[int, SecondBucket]]:
        """Every second with a bucket, ascending, each once: `seconds`, the spool and the inboxes merged."""
        sources: list[Iterator[tuple[int, SecondBucket]]] = [iter(sorted(self.seconds.items()))]
        if self.spool is not None:
            sources.append(self.spool.items())
        sources.extend(inbox.items(shift) for inbox, shift in self.inboxes)
        return merge_items(sources)

    def histograms(self) -> HistogramSet:
        """HDR histograms of the e2e paths (negative values clamped and counted: clock offset)."""
        out = HistogramSet()
        out.add(self.e2e)
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


def accounting_of(join: OnlineJoin, end: float, grace: float) -> Accounting:
    """The Accounting of a finished join (finishes it first if needed)."""
    if not join.finished:
        join.finish(end, grace)
    return Accounting(
        planned=join.planned, sent=join.sent, acked=join.acked, delivered=join.delivered, late=join.late,
        lost=join.lost, duplicated=join.duplicated, reordered=join.reordered, unexpected=join.unexpected,
        duplicate_sends=join.duplicate_sends, lost_reasons=dict(join.lost_reasons),
        lost_events=list(join.lost_events), lost_when=list(join.lost_when),
        duplicated_events=dict(join.duplicated_events), reordered_events=list(join.reordered_events),
        reordered_by_device=dict(join.reordered_by_device), unexpected_events=list(join.unexpected_events),
        late_events=list(join.late_events), e2e=join.histograms, seconds=join.seconds, spool=join.spool,
        start=join.start, offset_min=join.offset_min, offset_samples=join.offset_samples, end=end, grace=grace)


def account(sends: Sequence[SendRecord], arrivals: Sequence[ArrivalRecord], end: float,
            grace: float = 0.0, start: float | None = None) -> Accounting:
    """Join two whole logs. `end` is the run's end (wall s); arrivals after `end + grace` are `late`; `start`
    (wall s) is second 0 of the per-second results (default: the earliest intended send)."""
    if start is None:
        start = min((r.intended for r in sends), default=end)
    join = OnlineJoin(start, JoinWindows())
    for rec in sends:
        join.add_send(rec)
        join.on_ack(rec)
    for arr in arrivals:
        join.add_arrival(arr)
    return accounting_of(join, end, grace)
