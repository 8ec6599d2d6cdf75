"""The hot-path recorder the generator calls per event: totals, HDR histograms, per-second buckets, send log.

Contract with the generator (the runner wires it):
  on_send(rec)          publish() returned; rec.sent is set. The SAME record object is later completed in
                        place (rec.acked / rec.error) and passed to on_ack: the send log keeps one per event.
  on_publish_error(rec) publish() raised (rec.sent None or rec.error set); the event never left.
  on_ack(rec)           the ack callback fired: rec.acked set, or rec.error set (session lost first).
  on_arrival(rec)       an observer in this process saw an event (optional; the join is done after the run).
  on_onboarding(times)  one connect finished (transports.base.OnboardingTimes, seconds per phase).
  device_online(delta)  +1 on connect, -1 on disconnect.

Per-second buckets are keyed by whole seconds since `start` (wall clock) of the event's own time: offered by
`intended`, sent by `sent`, acked by `acked`. Each bucket has small HDR histograms (ack, ack_corrected,
send_lag, e2e_device_t); buckets older than `open_seconds` behind the newest are sealed (encoded, percentiles
computed, histogram memory freed: ~190 KB live vs a few hundred bytes sealed), so a one-hour run keeps MBs.
A Locust worker ships its sealed seconds with each periodic report (`take_sealed`) and forgets them, so it keeps
only the open ones; the master adds them up (`absorb_seconds`, second_bucket.SecondsInbox). The process that
writes the results keeps its sealed seconds in a spool (`spool_seconds`, metrics.second_spool): a window in
memory, older seconds on disk, read back in order when the results are written.

Measured cost (test_recorder.py::test_cost_per_event_is_a_few_microseconds, CPU time on this
shared 2-core machine at load ~7): 4.3-7.5 us per event for on_send + on_ack together, i.e. ~4-7% of one core
at 10,000 events/s; a value is recorded once (into its second), the run totals are added when a second seals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from simulator.clock import Clock
from simulator.metrics import names
from simulator.metrics.histograms import HistogramSet, percentiles_us
from simulator.metrics.logrows import send_from_row, send_to_row
from simulator.metrics.second_bucket import COUNTERS, SecondBucket, export_seconds, merge_seconds
from simulator.metrics.second_spool import SecondSpool, merge_items
from simulator.metrics.seconds_inbox import SecondsInbox
from simulator.records import ArrivalRecord, OnboardingTimes, SendRecord

if TYPE_CHECKING:
    from simulator.metrics.books import RunBooks

__all__ = ["BUCKET_PATHS", "COUNTERS", "MetricsRecorder", "SecondBucket"]

# Paths with a per-second histogram recorded live (e2e and e2e_corrected come from the post-run join).
BUCKET_PATHS = (names.PATH_ACK, names.PATH_ACK_CORRECTED, names.PATH_SEND_LAG, names.PATH_E2E_DEVICE_T)


class MetricsRecorder:
    """Counts and latencies of one generator process; `export()`/`merge()` combine workers."""

    def __init__(self, clock: Clock, start: float | None = None, keep_send_log: bool = True,
                 open_seconds: int = 5) -> None:
        self.clock = clock
        self.start = clock.wall() if start is None else start  # wall seconds: second 0 of the series
        # keep_send_log: every SendRecord in memory (tests, benches, replay). A run attaches `books` instead:
        # the send log streamed to disk and the join done online (metrics.books), memory O(devices).
        self.keep_send_log = keep_send_log
        self.books: RunBooks | None = None
        self.open_seconds = open_seconds
        self._histograms = HistogramSet()  # run totals; per-second paths arrive when their second seals
        self.totals = dict.fromkeys(COUNTERS, 0)
        self.online = 0
        self.connects = 0
        self.session_present = 0
        self.error_reasons: dict[str, int] = {}
        self.send_log: list[SendRecord] = []
        self.seconds: dict[int, SecondBucket] = {}
        self._newest = -1
        self._live: set[int] = set()
        self._last: tuple[int, SecondBucket] = (-1, SecondBucket())  # cache: most events hit the same second
        # The process that writes the results (issue 14): sealed seconds go to a spool (old ones on disk) and
        # workers' shipped seconds stay in their inboxes' spools, read in order at the end (`items`).
        self.spool: SecondSpool | None = None
        self._inboxes: list[tuple[SecondsInbox, int]] = []  # (inbox, whole-second shift into this frame)

    def spool_seconds(self, spool: SecondSpool | None = None) -> None:
        """Keep sealed seconds in a spool from now on (memory bounded by its window, not the run's length);
        not on a Locust worker, whose sealed seconds leave with its reports (`take_sealed`)."""
        self.flush()
        self.spool = SecondSpool() if spool is None else spool
        for second in sorted(self.seconds):
            self.spool.add(second, self.seconds.pop(second))
        self._live.clear()
        self._last = (-1, self._last[1])

    # -- buckets ---------------------------------------------------------------------------------------------
    def _bucket(self, when: float) -> SecondBucket:
        second = int(when - self.start) if when >= self.start else 0
        last = self._last
        if second == last[0]:
            return last[1]
        bucket = self.seconds.get(second)
        if bucket is None:
            bucket = self.seconds[second] = SecondBucket()
        if second > self._newest:
            self._newest = second
            self._seal_before(second - self.open_seconds)
        self._live.add(second)
        self._last = (second, bucket)
        return bucket

    def _seal_before(self, limit: int) -> None:
        spool = self.spool
        for second in sorted(s for s in self._live if s < limit):
            self.seconds[second].seal(self._histograms)
            self._live.discard(second)
            if spool is not None:
                spool.add(second, self.seconds.pop(second))
        if self._last[0] < limit:
            self._last = (-1, self._last[1])

    def _not_spooled(self, what: str) -> None:
        """A recorder with a spool writes the results: shipping its seconds would leave those on disk out."""
        if self.spool is not None:
            raise RuntimeError(f"MetricsRecorder.{what}: this recorder spools its seconds (it writes the results)")

    def flush(self) -> None:
        """Seal every second (totals complete); later values for them reopen cheaply."""
        self._seal_before(self._newest + 1)

    @property
    def histograms(self) -> HistogramSet:
        """Run totals per path, complete (flushes first)."""
        self.flush()
        return self._histograms

    def _error(self, reason: str | None) -> None:
        key = reason or "unknown"
        self.error_reasons[key] = self.error_reasons.get(key, 0) + 1

    # -- hot path --------------------------------------------------------------------------------------------
    def on_send(self, rec: SendRecord) -> None:
        sent = rec.sent
        if sent is None:
            self.on_publish_error(rec)
            return
        totals = self.totals
        totals["offered"] += 1
        totals["sent"] += 1
        self._bucket(rec.intended).counts["offered"] += 1
        bucket = self._bucket(sent)
        bucket.counts["sent"] += 1
        bucket.hist(names.PATH_SEND_LAG).record_s(sent - rec.intended, "sent_before_intended")
        if self.keep_send_log:
            self.send_log.append(rec)
        books = self.books
        if books is not None:
            books.on_send(rec)
            books.maybe_tick(sent)

    def on_publish_error(self, rec: SendRecord) -> None:
        self.totals["offered"] += 1
        self.totals["publish_errors"] += 1
        counts = self._bucket(rec.intended).counts
        counts["offered"] += 1
        counts["publish_errors"] += 1
        self._error(rec.error)
        if self.keep_send_log:
            self.send_log.append(rec)
        if self.books is not None:
            self.books.on_send(rec)

    def on_ack(self, rec: SendRecord) -> None:
        if self.books is not None:
            self.books.on_ack(rec)
        acked, sent = rec.acked, rec.sent
        if acked is None or sent is None or rec.error is not None:
            self.totals["ack_errors"] += 1
            self._bucket(self.clock.wall() if acked is None else acked).counts["ack_errors"] += 1
            self._error(rec.error)
            return
        self.totals["acked"] += 1
        bucket = self._bucket(acked)
        bucket.counts["acked"] += 1
        bucket.hist(names.PATH_ACK).record_s(acked - sent, "ack_before_send")
        bucket.hist(names.PATH_ACK_CORRECTED).record_s(acked - rec.intended, "ack_before_intended")

    def on_arrival(self, rec: ArrivalRecord) -> None:
        self.totals["delivered"] += 1
        bucket = self._bucket(rec.arrival)
        bucket.counts["delivered"] += 1
        if rec.t_ms is not None:
            bucket.hist(names.PATH_E2E_DEVICE_T).record_s(rec.arrival - rec.t_ms / 1000)

    def on_onboarding(self, times: OnboardingTimes) -> None:
        self.connects += 1
        self.session_present += int(times.session_present)
        total: float | None = None
        for phase in names.ONBOARDING_PHASES:
            value = getattr(times, phase)
            if value is not None:
                self._histograms.get(names.onboarding_path(phase)).record_s(value)
                total = value if total is None else total + value
        if total is not None:  # skipped phases (cached secret, session present) cost nothing, so are left out
            self._histograms.get(names.PATH_ONBOARDING).record_s(total)

    def device_online(self, delta: int) -> None:
        self.online += delta
        self._bucket(self.clock.wall()).online = self.online

    # -- reading ---------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The live progress line: last complete second's rates and ack percentiles, totals so far."""
        now_second = int(self.clock.wall() - self.start)
        last = self.seconds.get(now_second - 1)
        out: dict[str, Any] = {
            "elapsed_s": max(0.0, self.clock.wall() - self.start),
            "devices_online": self.online,
            "offered_eps": last.counts["offered"] if last else 0,
            "acked_eps": last.counts["acked"] if last else 0,
            "sent": self.totals["sent"], "acked": self.totals["acked"],
            "errors": self.totals["publish_errors"] + self.totals["ack_errors"],
            "ack_p50_ms": None, "ack_p99_ms": None,
        }
        if last is not None:
            if names.PATH_ACK in last.hists:
                pct = percentiles_us(last.hists[names.PATH_ACK].hist, (50.0, 99.0))
                out["ack_p50_ms"], out["ack_p99_ms"] = pct[50.0] / 1000, pct[99.0] / 1000
            elif names.PATH_ACK in last.stats:
                out["ack_p50_ms"], out["ack_p99_ms"] = last.stats[names.PATH_ACK][:2]
        return out

    def running_histograms(self) -> HistogramSet:
        """Run totals per path so far, as a copy, without sealing anything (live telemetry reads this every
        scrape; sealing the current second would split its histogram and move the progress line's p50/p99)."""
        out = HistogramSet()
        out.add(self._histograms)
        for second in self._live:
            for path, hist in self.seconds[second].hists.items():
                out.get(path).add(hist)
        return out

    def second_rows(self) -> list[dict[str, Any]]:
        """Every second from 0 to the newest: counters, devices online (carried forward), p50/p99 per path."""
        return list(self.iter_rows())

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """`second_rows`, one row at a time (a spool is read back from disk as the rows are consumed)."""
        online = 0
        second = 0
        for at, bucket in self.items():
            while second <= at:
                row: dict[str, Any] = {"second": second}
                if second < at:  # a second with no event
                    row.update(dict.fromkeys(COUNTERS, 0))
                    stats: Mapping[str, tuple[float, float, int, float]] = {}
                else:
                    row.update(bucket.counts)
                    online = bucket.online if bucket.online is not None else online
                    stats = bucket.stats
                row["devices_online"] = online
                for path in BUCKET_PATHS:
                    p50, p99 = stats[path][:2] if path in stats else (None, None)
                    row[f"{path}_p50_ms"], row[f"{path}_p99_ms"] = p50, p99
                yield row
                second += 1

    def items(self) -> Iterator[tuple[int, SecondBucket]]:
        """Every second with a bucket, ascending, each once (sealed first): in memory, spooled, and the inboxes
        absorbed."""
        self.flush()
        sources: list[Iterator[tuple[int, SecondBucket]]] = [iter(sorted(self.seconds.items()))]
        if self.spool is not None:
            sources.append(self.spool.items())
        sources.extend(inbox.items(shift) for inbox, shift in self._inboxes)
        return merge_items(sources)

    def second_histograms(self) -> dict[int, dict[str, tuple[str, float]]]:
        """second -> path -> (encoded histogram, max ms), for latency.hlog."""
        return {second: bucket.encoded_with_max() for second, bucket in self.items()}

    # -- shipping between workers ----------------------------------------------------------------------------
    def export(self, include_send_log: bool = False) -> dict[str, Any]:
        """JSON-able state (histograms HDR-encoded) for the master of a distributed run."""
        self._not_spooled("export")
        self.flush()
        seconds = export_seconds(self.seconds)
        out: dict[str, Any] = {
            "version": 1, "start": self.start, "totals": dict(self.totals), "online": self.online,
            "connects": self.connects, "session_present": self.session_present,
            "error_reasons": dict(self.error_reasons), "histograms": self._histograms.export(),
            "seconds": seconds,
        }
        if include_send_log:
            out["send_log"] = [send_to_row(rec) for rec in self.send_log]
        return out

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add a worker's `export()` into this recorder (seconds re-aligned on this recorder's start).

        Per-second devices_online is summed over workers that reported in that second (an approximation
        when workers report in different seconds)."""
        self.flush()
        for key, n in dict(data["totals"]).items():
            self.totals[key] = self.totals.get(key, 0) + int(n)
        self.online += int(data.get("online", 0))
        self.connects += int(data.get("connects", 0))
        self.session_present += int(data.get("session_present", 0))
        for reason, n in dict(data.get("error_reasons", {})).items():
            self.error_reasons[reason] = self.error_reasons.get(reason, 0) + int(n)
        self._histograms.add(HistogramSet.from_export(data["histograms"]))
        self.merge_seconds(float(data["start"]), data["seconds"])
        self.send_log.extend(send_from_row(row) for row in data.get("send_log", ()))

    def merge_seconds(self, start: float, seconds: Mapping[str, Any]) -> None:
        """Add shipped per-second buckets (`take_sealed` or `export`'s "seconds", recorded by a recorder whose
        second 0 is `start`, wall s), re-aligned on this recorder's start by whole seconds."""
        newest = merge_seconds(self.seconds, seconds, round(start - self.start))
        self._newest = max(self._newest, newest)

    def absorb_seconds(self, inbox: SecondsInbox) -> None:
        """Add a worker's shipped seconds to this recorder (re-aligned by whole seconds, as `merge` does): the
        inbox is kept, not copied, and read in order with the rest by `items` (its old seconds stay on disk)."""
        self.flush()
        shift = round(inbox.start - self.start)
        self._inboxes.append((inbox, shift))
        if inbox.newest >= 0:
            self._newest = max(self._newest, max(0, inbox.newest + shift))

    def take_sealed(self) -> dict[str, Any]:
        """The sealed seconds not shipped yet, as {"start", "seconds"}, forgotten here (issue 14: a worker ships
        them with each periodic report, so its memory and its final message stay bounded whatever the run's
        length; only the `open_seconds` still recording stay). A late value for a second already shipped
        reopens a fresh bucket that ships in a later call: the receiver adds, so nothing is counted twice."""
        self._not_spooled("take_sealed")
        gone = [s for s in self.seconds if s not in self._live]
        out = {"start": self.start, "seconds": export_seconds({s: self.seconds[s] for s in gone})}
        for second in gone:
            del self.seconds[second]
        return out

    def final_export(self, include_send_log: bool = False) -> dict[str, Any]:
        """`export()` whose seconds leave this recorder (a worker's final message after `take_sealed` reports:
        only what they did not ship; Locust sends one more report after it, which must not ship them again)."""
        out = self.export(include_send_log=include_send_log)
        out["seconds"] = self.take_all()["seconds"]
        return out

    def take_all(self) -> dict[str, Any]:
        """Every second (sealed first), shipped and forgotten: a worker's last interval, in its final message."""
        self.flush()
        return self.take_sealed()
