"""Arrivals pulled from the observer while the run plays, page by page (`arrivals(since=cursor)`), into the books.

The embedded collector pages its arrival log (`GET /arrivals?since=N&format=json`); the trigger observers page
the arrivals they hold. Pulling as the run plays lets the join evict matched events as they arrive, so the
generator never holds the whole arrival log (issue 14). A thread (a greenlet when gevent has patched the
process) pulls every PULL_S; the generator's own loop joins what it received (RunBooks.maybe_tick).
"""

from __future__ import annotations

import logging
import threading
import time

from simulator.errors import FleetsimError
from simulator.metrics.books import RunBooks
from simulator.observers.base import Observer, Releasing

__all__ = ["ArrivalPump"]

log = logging.getLogger("fleetsim.arrivals")

PULL_S = 1.0  # one page request per second: loopback HTTP, ~1 ms per page of a few thousand rows


class ArrivalPump:
    """Reads the observer from `cursor` on and offers every page to `books`."""

    def __init__(self, observer: Observer, books: RunBooks, cursor: int = 0,
                 keep: frozenset[str] | None = None) -> None:
        self.observer = observer
        self.books = books
        self.cursor = cursor  # arrivals read so far (the observer's index of the next one)
        self.keep = keep  # a worker's own devices: the others' arrivals are its peers' to join
        self.kept = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.read_at: float | None = None  # wall s of the last read the observer answered (ObserverLoss)

    def pull(self) -> int:
        """One page: returns how many arrivals it read."""
        page = self.observer.arrivals(self.cursor)
        self.read_at = time.time()
        if page:
            self.cursor += len(page)
            keep = self.keep
            mine = page if keep is None else [a for a in page if a.key[0] in keep]
            self.kept += len(mine)
            self.books.offer_arrivals(mine)
            if isinstance(self.observer, Releasing):  # a trigger observer: the books have them now (issue 14)
                self.observer.release(self.cursor)
        return len(page)

    def _loop(self) -> None:
        while not self._stop.wait(PULL_S):
            try:
                self.pull()
            except (FleetsimError, OSError, ValueError) as exc:  # the final drain retries and reports
                # Once per distinct error: an observer gone for the rest of a long run (or its end's count of
                # the plan) would otherwise print a line a second over the operator's console.
                if str(exc) != self.error:
                    log.warning("reading arrivals: %s (said once; the end of the run retries)", exc)
                self.error = str(exc)
            else:
                self.error = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fleetsim-arrivals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def drain(self, expected: int, settle_s: float) -> None:
        """After the run: pull until the observer has given `expected` arrivals in all, or stopped moving for a
        second, or `settle_s` passed."""
        self.stop()
        deadline = time.monotonic() + settle_s
        last_change = time.monotonic()
        while True:
            if self.pull():
                last_change = time.monotonic()
            now = time.monotonic()
            if self.kept >= expected or now >= deadline or now - last_change > 1.0:
                break
            time.sleep(0.1)  # polling another process's log; nothing to wait on here  # sleep-ok
        self.pull()
