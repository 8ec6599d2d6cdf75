"""The run's books attached to a generator recorder while the plan plays: logs streamed, arrivals joined live.

`execute` makes one `LiveBooks` (it owns the observer) and hands it to a driver that can use it (`attach`); the
driver attaches it to the recorder it creates. Without one (a driver that does not take it, plain Locust), the
recorder keeps its send log in memory and the same books are built from it at the end (generator.finish).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulator.generator.arrival_pump import ArrivalPump
from simulator.generator.finish import arm_join_check, live_operation_starts, spool_dir
from simulator.metrics.books import RunBooks
from simulator.metrics.recorder import MetricsRecorder
from simulator.observers.base import Observer
from simulator.plan import FleetPlan

__all__ = ["LiveBooks"]


@dataclass
class LiveBooks:
    """What a driver needs to keep a recorder's books on disk and joined live (issue 14)."""

    observer: Observer | None
    results_root: Path
    plan: FleetPlan | None = None  # self-driven runs: operations start at their planned time (the funnel)
    keep: frozenset[str] | None = None  # a worker: join only these devices' arrivals (its partition)
    pump: ArrivalPump | None = None
    books: RunBooks | None = None

    def attach(self, recorder: MetricsRecorder) -> RunBooks:
        """Stream `recorder`'s send log into a spool dir; start pulling arrivals when there is an observer."""
        books = RunBooks(spool_dir(self.results_root), recorder.start, join=self.observer is not None)
        if books.join is not None and recorder.spool is not None:  # this process writes the results (issue 14)
            books.join.spool_seconds()
        arm_join_check(books, self.observer)  # the fence's measured offset judges each joined pair (invalid_join)
        # Finished operations are folded into the funnel's totals once their start is known (run_started).
        books.funnel.hold_folding = self.plan is not None
        self.books = books
        recorder.books = books
        recorder.keep_send_log = False
        recorder.send_log.clear()
        if self.observer is not None:
            self.pump = ArrivalPump(self.observer, books, keep=self.keep)
            self.pump.start()
        return books

    def run_started(self, run_start_wall: float) -> None:
        """The fleet's run clock started (FleetCallbacks.on_run_start): the planned operations' start times."""
        if self.books is not None and self.plan is not None:
            self.books.funnel.starts = live_operation_starts(self.plan, run_start_wall)
