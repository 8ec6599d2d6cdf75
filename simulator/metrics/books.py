"""A generator process's books while the run plays: per-event logs streamed to disk, aggregates in memory.

The recorder hands every send record here (`on_send` when publish returned or raised, `on_ack` when the ack
callback completed it); the arrival pump hands arrivals (`offer_arrivals`, from any thread). Per event, only
what is still open stays in memory:
  - events.sent.csv is written row by row as records complete (ack order, not send order); records never
    acked are written when the books close;
  - events.arrivals.csv is written row by row as arrivals are read from the observer;
  - the join (online_join.OnlineJoin) keeps events in flight, lost ones (the oldest beyond a cap in a file here,
    unmatched_store.SPILL_FILE) and a time-bounded memory of recent keys;
  - the OTA funnel keeps one small record per operation; fault attribution keeps the (device, time) of send
    errors only.
So the process grows with devices (and operations, and losses), not with events (issue 14).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from simulator.metrics.funnel import FunnelBuilder, OperationId
from simulator.metrics.logrows import ARRIVAL_COLUMNS, SEND_COLUMNS, arrival_to_row, send_to_row
from simulator.metrics.online_join import JoinWindows, OnlineJoin
from simulator.metrics.unmatched_store import SPILL_FILE
from simulator.records import ArrivalRecord, SendRecord

__all__ = ["ARRIVALS_SPOOL", "SENT_SPOOL", "RunBooks", "behind_line", "books_from_logs"]

SENT_SPOOL = "events.sent.csv"
ARRIVALS_SPOOL = "events.arrivals.csv"
TICK_S = 1.0  # the join is ticked (arrivals joined, old keys evicted) at most this often, wall seconds
FOLD_AFTER_S = 60.0  # an operation is folded into the funnel's totals this long after its final status
BEHIND_WARN_EVERY_S = 60.0  # while the observer is behind the join's windows, say so at most this often

log = logging.getLogger(__name__)


class RunBooks:
    """Streams the logs into `spool_dir` and keeps the join, the funnel and the send errors."""

    def __init__(self, spool_dir: str | os.PathLike[str], start: float, join: bool = True,
                 starts: Mapping[OperationId, float] | None = None, windows: JoinWindows | None = None) -> None:
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.join: OnlineJoin | None = OnlineJoin(start, windows, self.spool_dir / SPILL_FILE) if join else None
        self.funnel = FunnelBuilder(starts)
        self.errors: list[tuple[str, float]] = []  # (device, sent else intended) of each send error
        self.ota_events: dict[tuple[str, str], int] = {}  # (status, statusCode) -> events that left
        self.sends = 0
        self.arrivals = 0
        self._awaiting_ack: dict[int, SendRecord] = {}  # id(record) -> record sent, not yet acked
        self._inbox: deque[ArrivalRecord] = deque()  # the pump's thread appends, the generator's loop pops
        self._next_tick = 0.0
        self._behind_told = 0  # evicted_then_arrived when the operator was last told
        self._next_behind = 0.0
        # Open for the whole run (closed by close()): a context manager cannot span the run's callbacks.
        self._sent_file: IO[str] | None = open(  # noqa: SIM115
            self.spool_dir / SENT_SPOOL, "w", encoding="utf-8", newline="")
        self._arr_file: IO[str] | None = open(  # noqa: SIM115
            self.spool_dir / ARRIVALS_SPOOL, "w", encoding="utf-8", newline="")
        self._sent_csv = csv.writer(self._sent_file, lineterminator="\n")
        self._arr_csv = csv.writer(self._arr_file, lineterminator="\n")
        self._sent_csv.writerow(SEND_COLUMNS)
        self._arr_csv.writerow(ARRIVAL_COLUMNS)

    @property
    def sent_path(self) -> Path:
        return self.spool_dir / SENT_SPOOL

    @property
    def arrivals_path(self) -> Path:
        return self.spool_dir / ARRIVALS_SPOOL

    # -- generator side (one thread / greenlet loop) ----------------------------------------------------------
    def on_send(self, rec: SendRecord) -> None:
        self.sends += 1
        if self.join is not None:
            self.join.add_send(rec)
        if rec.sent is not None:
            self.funnel.add(rec.key, rec.sent, rec.code)
            key = (rec.key[2], rec.code)
            self.ota_events[key] = self.ota_events.get(key, 0) + 1
        if rec.error is not None:
            self.errors.append((rec.key[0], rec.sent if rec.sent is not None else rec.intended))
        if rec.sent is None or rec.error is not None:
            self._sent_csv.writerow(send_to_row(rec))  # complete: it never left
        else:
            self._awaiting_ack[id(rec)] = rec

    def on_ack(self, rec: SendRecord) -> None:
        if self._awaiting_ack.pop(id(rec), None) is None:
            return  # already written (a second callback for one record)
        if rec.error is not None:
            self.errors.append((rec.key[0], rec.sent if rec.sent is not None else rec.intended))
        if self.join is not None:
            self.join.on_ack(rec)
        self._sent_csv.writerow(send_to_row(rec))

    def maybe_tick(self, now: float) -> None:
        """Cheap unless a tick is due: join the arrivals received so far, evict, flush the files."""
        if now < self._next_tick:
            return
        self._next_tick = now + TICK_S
        self.tick(now)

    def tick(self, now: float | None) -> None:
        self._take_inbox()
        if now is not None:
            if self.join is not None:
                self.join.tick(now)
                self._tell_if_behind(now)
            self.funnel.fold(now - FOLD_AFTER_S)

    def _tell_if_behind(self, now: float) -> None:
        """Operator truth (issue 14): events that arrive after the join stopped waiting for them mean the
        observer's arrival lag exceeds the join's windows (a collector that falls behind); the run's counts stay
        exact (late matches still count as batch would) but the operator should know the backend is behind."""
        assert self.join is not None
        if now < self._next_behind or self.join.evicted_then_arrived == self._behind_told:
            return
        self._behind_told = self.join.evicted_then_arrived
        self._next_behind = now + BEHIND_WARN_EVERY_S
        log.warning("%s", behind_line(self.join))

    # -- observer side (any thread) ---------------------------------------------------------------------------
    def offer_arrivals(self, arrivals: Iterable[ArrivalRecord]) -> None:
        self._inbox.extend(arrivals)

    def _take_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            arr = inbox.popleft()
            self.arrivals += 1
            self._arr_csv.writerow(arrival_to_row(arr))
            if self.join is not None:
                self.join.add_arrival(arr)

    # -- end ---------------------------------------------------------------------------------------------------
    def close(self, end: float, grace: float) -> None:
        """The run is over and the pump has delivered its last page: write what is left, finish the join."""
        self._take_inbox()
        for rec in self._awaiting_ack.values():
            self._sent_csv.writerow(send_to_row(rec))
        self._awaiting_ack.clear()
        for f in (self._sent_file, self._arr_file):
            if f is not None:
                f.close()
        self._sent_file = self._arr_file = None
        if self.join is not None and not self.join.finished:
            self.join.finish(end, grace)
            if self.join.evicted_then_arrived:
                log.warning("%s", behind_line(self.join))

    @property
    def closed(self) -> bool:
        return self._sent_file is None


def behind_line(join: OnlineJoin) -> str:
    """The console line that says the observer fell behind the join's windows (see RunBooks._tell_if_behind)."""
    totals, w = join.totals(), join.windows
    return (f"observer behind: {totals.evicted_then_arrived} events arrived after the join stopped waiting for "
            f"them (unseen {w.grace_s:g} s after their ack, or {w.ack_timeout_s:g} s after an unacked send); "
            f"still counted as delivered or late. Now {totals.in_flight} in flight, {totals.unmatched} unmatched "
            f"in memory, {totals.spilled} on disk ({SPILL_FILE})")


def books_from_logs(spool_dir: str | os.PathLike[str], start: float, sends: Iterable[SendRecord],
                    join: bool = True, starts: Mapping[OperationId, float] | None = None) -> RunBooks:
    """Books of whole logs (a recorder that kept its send log in memory: tests, replay)."""
    books = RunBooks(spool_dir, start, join=join, starts=starts)
    for rec in sends:
        books.on_send(rec)
        if rec.sent is not None and rec.error is None:
            books.on_ack(rec)
    return books
