"""The send log joined with the arrival log while the run plays, in bounded memory (issue 14).

While the run plays, what stays in memory is O(devices + events in flight + `unmatched_max`) with a spill file
(the books give one), never O(events) nor O(events lost); `finish` lists every lost key (O(lost), at the end):
  in flight   key -> SendRecord of events sent and not yet seen by the observer; an arrival removes it. One
              still unacked `ack_timeout_s` after it was sent, or acked/failed and unseen `grace_s` after, is
              evicted to `unmatched`. Two queues in the order their deadline starts (unacked: send order; acked
              or failed: ack order), so a tick pops the expired from their fronts: O(evicted), not O(in flight).
  unmatched   presumed lost (unmatched_store: a compact entry per event, the oldest beyond
              `unmatched_max` on disk); a later arrival still matches it, so a slow observer is counted as batch
              would. Such an arrival is counted (`evicted_then_arrived`): the observer is behind the windows.
  held        arrivals not yet joined: they are joined in arrival-time order once `hold_s` old (the observer's
              pages may interleave), all of them at `finish`.
  recent      keys (and their (device, uuid, status, progress) base) first seen or sent within `remember_s`:
              a re-delivery of one is a duplicate. Older ones are forgotten, so a copy arriving later than
              `remember_s` after its original counts as unexpected (the one difference from a join of whole logs).
  per device  the (send time, send sequence) of the latest-sent event seen so far: reordering.
Per-second results (delivered and e2e histograms by arrival second, lost by intended second) live in
recorder.SecondBucket objects that seal (encode, free) like the recorder's own.

Outcomes are those of `accounting.account` (which feeds this class two whole logs): delivered, late (first seen
after end + grace), lost (publish_failed / never_acked / acked_not_arrived), duplicated, reordered, unexpected.
Ticks, eviction and the spill change none of them (tests/unit/metrics/test_join_spill.py, a property test).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.events import EventKey
from simulator.metrics import names
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.join_check import JoinChecker
from simulator.metrics.second_bucket import SecondBucket, export_seconds
from simulator.metrics.second_spool import SecondSpool, merge_items
from simulator.metrics.unmatched_store import Unmatched, UnmatchedStore, unmatched_reason
from simulator.records import ArrivalRecord, SendRecord

__all__ = ["JoinTotals", "JoinWindows", "OnlineJoin", "lost_reason"]

# Lists of anomalous keys are kept up to this many each (counters stay exact; the summary lists 100).
LISTED_MAX = 10_000
E2E_PATHS = (names.PATH_E2E, names.PATH_E2E_CORRECTED, names.PATH_E2E_DEVICE_T)
NEGATIVE = "observer_clock_behind"
Base = tuple[str, str, str, int]


@dataclass(frozen=True)
class JoinWindows:
    """Seconds (wall clock) that bound the in-memory tables; none of them changes an outcome of a normal run."""

    ack_timeout_s: float = 60.0  # unacked this long after sent: evicted as presumed lost (never_acked)
    grace_s: float = 30.0  # acked (or failed) and unseen this long after: evicted (acked_not_arrived)
    hold_s: float = 2.0  # an arrival is joined once this old (arrivals of one page are joined in time order)
    remember_s: float = 60.0  # how long a seen key/base is remembered to call a re-delivery a duplicate
    open_seconds: int = 5  # per-second e2e histograms this far behind the newest arrival are sealed
    # Unmatched events kept in memory (the rest go to the spill file, when the join has one): ~265 B each with
    # its key (bench/join_memory.py), so 200,000 is ~53 MB -- 100 s of a worker's 2,000 events/s all unseen.
    unmatched_max: int = 200_000


@dataclass(frozen=True)
class JoinTotals:
    """Counters of the join so far (live progress, tests): what is in memory and what came out."""

    in_flight: int
    unmatched: int  # in memory
    held: int
    recent: int
    delivered: int
    spilled: int = 0  # unmatched on disk now
    evicted_then_arrived: int = 0  # arrivals of events evicted from in flight: the observer is behind


class _Pending:
    __slots__ = ("rec", "seq", "when")

    def __init__(self, rec: SendRecord, seq: int) -> None:
        self.rec = rec
        self.seq = seq
        self.when = rec.sent if rec.sent is not None else rec.intended  # the device's send order

    def compact(self) -> Unmatched:
        """What stays of it once unmatched (the record's ack state now)."""
        rec = self.rec
        return Unmatched(self.seq, rec.sent, rec.intended, rec.acked is not None)


def lost_reason(rec: SendRecord) -> str:
    """Why an event that never arrived was lost. The generator's contract (recorder.py): a publish that raised
    keeps `sent=None` with its error; an error with `sent` set came from the ack callback (session lost)."""
    if rec.sent is None:
        return names.LOST_PUBLISH_FAILED
    if rec.acked is None:
        return names.LOST_NEVER_ACKED
    return names.LOST_ACKED_NOT_ARRIVED


class OnlineJoin:
    """Feed it sends (`add_send`, `on_ack`) and arrivals (`add_arrival`) in any interleaving; `tick(now)` joins
    and evicts; `finish(end, grace)` resolves what is left. Not thread-safe: one caller (the generator's loop).
    `on_ack` must follow each completion of a record (the recorder's contract): it moves the event's deadline.
    `spill`: the file unmatched events beyond `windows.unmatched_max` go to (None: they stay in memory)."""

    def __init__(self, start: float, windows: JoinWindows | None = None, spill: Path | None = None) -> None:
        self.start = start  # wall s: second 0 of the per-second results (the recorder's start)
        self.windows = windows or JoinWindows()
        self._seq = 0
        # In flight, in the order of their deadlines' start (see the module's docstring).
        self._unacked: OrderedDict[EventKey, _Pending] = OrderedDict()  # deadline: sent + ack_timeout_s
        self._done: OrderedDict[EventKey, _Pending] = OrderedDict()  # deadline: (acked, else sent) + grace_s
        self._unmatched = UnmatchedStore(self.windows.unmatched_max, spill)
        self.evicted_then_arrived = 0
        self._held: list[tuple[float, int, ArrivalRecord]] = []
        self._held_seq = 0
        self._strangers: list[ArrivalRecord] = []  # unknown keys: resolved at finish (a send may come later)
        self._seen: OrderedDict[EventKey, tuple[float, float | None]] = OrderedDict()  # key -> (first, sent)
        self._bases: OrderedDict[Base, float] = OrderedDict()  # base -> last send time
        self._high: dict[str, tuple[float, int]] = {}
        self._dup_ids: set[int] = set()
        self.deadline: float | None = None  # end + grace, once known: later first arrivals are late
        self.seconds: dict[int, SecondBucket] = {}
        # The process that writes the results moves sealed seconds here (old ones on disk, issue 14); a worker
        # ships them with its reports instead (take_sealed).
        self.spool: SecondSpool | None = None
        self._newest = -1
        self._live: set[int] = set()
        self.histograms = HistogramSet()  # e2e totals, complete after finish
        # counters (the Accounting fields)
        self.planned = self.sent = self.acked = self.delivered = self.late = 0
        self.duplicated = self.reordered = self.unexpected = self.duplicate_sends = 0
        self.lost_reasons: dict[str, int] = dict.fromkeys(names.LOST_REASONS, 0)
        self.lost_events: list[tuple[EventKey, str]] = []
        self.lost_when: list[float] = []  # per lost event: sent, else intended (fault attribution)
        self.duplicated_events: dict[EventKey, int] = {}
        self.reordered_events: list[EventKey] = []
        self.reordered_by_device: dict[str, int] = {}
        self.unexpected_events: list[EventKey] = []
        self.late_events: list[EventKey] = []
        self.offset_min: float | None = None  # min(arrival - sent) over arrivals of sent events
        self.offset_samples = 0
        # Arrivals before their send beyond the fence's measured clock offset (invalid_join); the run's
        # observer re-arms it with the offset it measured at the mark (finish.arm_join_check).
        self.check = JoinChecker()
        self.finished = False

    # -- input -----------------------------------------------------------------------------------------------
    def add_send(self, rec: SendRecord) -> None:
        """A send record as soon as it exists (publish returned or raised); its ack may complete it later."""
        key = rec.key
        if key in self._unacked or key in self._done or key in self._seen or key in self._unmatched:
            self.duplicate_sends += 1
            self._dup_ids.add(id(rec))
            return
        pending = _Pending(rec, self._seq)
        self._seq += 1
        self.planned += 1
        if rec.sent is None:
            self._unmatch(key, pending)  # never left: it cannot arrive, but keep batch semantics if it does
        else:
            self.sent += 1
            complete = rec.acked is not None or rec.error is not None  # a whole log's record (account)
            (self._done if complete else self._unacked)[key] = pending
        self._bases[key[:4]] = pending.when
        self._bases.move_to_end(key[:4])

    def on_ack(self, rec: SendRecord) -> None:
        """The ack callback completed `rec` (acked, or error): its deadline is now (acked, else sent) + grace_s."""
        if id(rec) in self._dup_ids:
            return
        acked = rec.acked is not None and rec.sent is not None
        if acked:
            self.acked += 1
        key = rec.key
        pending = self._unacked.get(key)
        if pending is not None:
            if pending.rec is rec and (rec.acked is not None or rec.error is not None):
                del self._unacked[key]
                self._done[key] = pending  # on_ack comes in ack order: the queue stays in deadline order
        elif acked and key not in self._done and key not in self._seen:
            self._unmatched.mark_acked(key)  # acked after ack_timeout_s evicted it: acked_not_arrived if lost

    def add_arrival(self, arr: ArrivalRecord) -> None:
        heapq.heappush(self._held, (arr.arrival, self._held_seq, arr))
        self._held_seq += 1

    # -- work ------------------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Join arrivals older than hold_s, evict what waited too long, forget old keys. `now`: wall s."""
        self._drain(now - self.windows.hold_s)
        w = self.windows
        self._evict(now, w)
        self._unmatched.spill()
        limit = now - w.remember_s
        seen = self._seen
        while seen and next(iter(seen.values()))[0] < limit:
            seen.popitem(last=False)
        bases = self._bases
        while bases and next(iter(bases.values())) < limit:
            bases.popitem(last=False)

    def _evict(self, now: float, w: JoinWindows) -> None:
        """Pop the expired from the queues' fronts. A queue is in deadline order up to the disorder of its
        callers (publish calls returning out of order, an error's deadline counting from its send): an entry
        behind a later deadline waits for it, late by that much (ms), which changes no outcome -- eviction only
        moves an event from in flight to unmatched, where an arrival still finds it."""
        unacked, done = self._unacked, self._done
        while unacked:
            key, pending = unacked.popitem(last=False)
            rec = pending.rec
            if rec.acked is not None or rec.error is not None:  # completed without on_ack: re-queue it as one
                done[key] = pending
            elif self._expired(rec, now, w):
                self._unmatch(key, pending)
            else:
                unacked[key] = pending  # not due: back to the front
                unacked.move_to_end(key, last=False)
                break
        while done:
            key, pending = done.popitem(last=False)
            if not self._expired(pending.rec, now, w):
                done[key] = pending
                done.move_to_end(key, last=False)
                break
            self._unmatch(key, pending)

    def _unmatch(self, key: EventKey, pending: _Pending) -> None:
        rec = pending.rec
        self._unmatched.add(key, pending.seq, rec.sent, rec.intended, rec.acked is not None)

    @staticmethod
    def _expired(rec: SendRecord, now: float, w: JoinWindows) -> bool:
        if rec.acked is None and rec.error is None:
            return rec.sent is not None and now - rec.sent > w.ack_timeout_s
        done = rec.acked if rec.acked is not None else rec.sent
        return done is not None and now - done > w.grace_s

    def _drain(self, before: float | None) -> None:
        held = self._held
        while held and (before is None or held[0][0] < before):
            self._join(heapq.heappop(held)[2])

    def _join(self, arr: ArrivalRecord) -> None:
        key = arr.key
        pending = self._unacked.pop(key, None) or self._done.pop(key, None)
        if pending is not None:
            rec = pending.rec
            sent, intended, when, seq = rec.sent, rec.intended, pending.when, pending.seq
        else:
            seen = self._seen.get(key)  # a key seen is in no table (its arrival took it out): no spill lookup
            entry = self._unmatched.pop(key) if seen is None else None
            if entry is None:
                self._stray(arr, seen)
                return
            sent, intended, when, seq = entry.sent, entry.intended, entry.when, entry.seq
            if sent is not None:  # it left and the observer saw it after the join stopped waiting
                self.evicted_then_arrived += 1
        self._offset(arr.arrival, sent)
        if sent is not None:
            self.check.add(key, sent, arr.arrival)
        self._seen[key] = (arr.arrival, sent)
        device = key[0]
        order = (when, seq)
        high = self._high.get(device)
        if high is not None and order < high:
            self.reordered += 1
            self.reordered_by_device[device] = self.reordered_by_device.get(device, 0) + 1
            if len(self.reordered_events) < LISTED_MAX:
                self.reordered_events.append(key)
        else:
            self._high[device] = order
        if self.deadline is not None and arr.arrival > self.deadline:
            self.late += 1
            if len(self.late_events) < LISTED_MAX:
                self.late_events.append(key)
            return
        self.delivered += 1
        bucket = self._bucket(arr.arrival)
        bucket.counts["delivered"] += 1
        if sent is not None:
            bucket.hist(names.PATH_E2E).record_s(arr.arrival - sent, NEGATIVE)
        bucket.hist(names.PATH_E2E_CORRECTED).record_s(arr.arrival - intended, NEGATIVE)
        if arr.t_ms is not None:
            bucket.hist(names.PATH_E2E_DEVICE_T).record_s(arr.arrival - arr.t_ms / 1000, NEGATIVE)

    def _stray(self, arr: ArrivalRecord, seen: tuple[float, float | None] | None) -> None:
        """An arrival of no pending event: a re-delivery, or a stranger (resolved at finish)."""
        key = arr.key
        if seen is not None:
            self._offset(arr.arrival, seen[1])
            self._duplicate(key)
        elif key[:4] in self._bases:
            # The observer numbers every arrival of the same (device, uuid, status, progress) as a new
            # occurrence, so a re-delivery of an event already sent (a QoS 1/2 resend after a reconnect, a
            # duplicate-send fault) arrives with an occurrence nobody sent: a duplicate, not a stranger.
            self._duplicate(key)
        else:
            self._strangers.append(arr)

    def _offset(self, arrival: float, sent: float | None) -> None:
        if sent is None:
            return
        delta = arrival - sent
        self.offset_min = delta if self.offset_min is None else min(self.offset_min, delta)
        self.offset_samples += 1

    def _duplicate(self, key: EventKey) -> None:
        self.duplicated += 1
        if key in self.duplicated_events or len(self.duplicated_events) < LISTED_MAX:
            self.duplicated_events[key] = self.duplicated_events.get(key, 0) + 1

    def _second(self, when: float) -> int:
        return int(when - self.start) if when >= self.start else 0

    def _bucket(self, when: float) -> SecondBucket:
        second = self._second(when)
        bucket = self.seconds.get(second)
        if bucket is None:
            bucket = self.seconds[second] = SecondBucket()
            bucket.counts["lost"] = 0
        if second > self._newest:
            self._newest = second
            limit = second - self.windows.open_seconds
            for old in sorted(s for s in self._live if s < limit):
                self.seconds[old].seal(self.histograms)
                self._live.discard(old)
                if self.spool is not None:
                    self.spool.add(old, self.seconds.pop(old))
        self._live.add(second)
        return bucket

    def spool_seconds(self, spool: SecondSpool | None = None) -> None:
        """Move sealed seconds to a spool from now on (not on a worker: its seconds leave with its reports)."""
        self.spool = SecondSpool() if spool is None else spool
        for second in sorted(s for s in self.seconds if s not in self._live):
            self.spool.add(second, self.seconds.pop(second))

    def items(self) -> Iterator[tuple[int, SecondBucket]]:
        """Every second with a bucket, ascending, each once (the spool's and those still here, merged)."""
        here = iter(sorted(self.seconds.items()))
        return merge_items([here] if self.spool is None else [here, self.spool.items()])

    def take_sealed(self) -> dict[str, Any]:
        """The sealed seconds (delivered, e2e histograms) not shipped yet, as {"start", "seconds"}, forgotten
        here: a worker ships them with each periodic report (issue 14), so neither its memory nor its final
        message grows with the run's length. A late arrival or a lost count for a shipped second opens a fresh
        bucket that ships later (the receiver adds)."""
        gone = [s for s in self.seconds if s not in self._live]
        out = {"start": self.start, "seconds": export_seconds({s: self.seconds[s] for s in gone})}
        for second in gone:
            del self.seconds[second]
        return out

    def finish(self, end: float, grace: float) -> None:
        """The run is over and every arrival is in: join the rest; whatever is still unseen is lost."""
        self.deadline = end + grace
        self._drain(None)
        strangers, self._strangers = self._strangers, []
        for arr in strangers:  # a send recorded after its arrival was read (publish returned late)
            key = arr.key
            if key in self._unacked or key in self._done or key in self._seen or key[:4] in self._bases \
                    or key in self._unmatched:
                self._join(arr)
            else:
                self.unexpected += 1
                if len(self.unexpected_events) < LISTED_MAX:
                    self.unexpected_events.append(key)
        in_flight = [(key, p.compact()) for queue in (self._unacked, self._done) for key, p in queue.items()]
        self._unacked.clear()
        self._done.clear()
        for key, entry in self._unmatched.drain(in_flight):  # in send order, the spilled ones streamed back
            reason = unmatched_reason(entry)
            self.lost_reasons[reason] += 1
            self.lost_events.append((key, reason))
            self.lost_when.append(entry.when)
            self._bucket_counts(entry.intended)["lost"] += 1
        for second in list(self._live):
            self.seconds[second].seal(self.histograms)
        self._live.clear()
        self.finished = True

    def _bucket_counts(self, when: float) -> dict[str, int]:
        second = self._second(when)
        bucket = self.seconds.get(second)
        if bucket is None:
            bucket = self.seconds[second] = SecondBucket()
            bucket.counts["lost"] = 0
        return bucket.counts

    @property
    def lost(self) -> int:
        return sum(self.lost_reasons.values())

    def totals(self) -> JoinTotals:
        return JoinTotals(in_flight=len(self._unacked) + len(self._done), unmatched=self._unmatched.in_memory,
                          held=len(self._held), recent=len(self._seen) + len(self._bases), delivered=self.delivered,
                          spilled=self._unmatched.spilled, evicted_then_arrived=self.evicted_then_arrived)
