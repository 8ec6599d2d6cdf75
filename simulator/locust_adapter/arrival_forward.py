"""The master's side of forwarded arrivals: its trigger observer read as the run plays, each worker sent its own.

See simulator.observers.forwarded for why. Every PULL_S the master reads the arrivals its observer got since the
last read, sends each worker those of its devices (device index % worker count, the fleet's partition: the
worker Locust numbered i holds devices i, i + n, ...) in messages of at most CHUNK rows, and releases them from
the observer, so the master holds what is not forwarded yet. An arrival of a device not in the plan goes to
worker 0, whose join counts it as unexpected (as the master's own join did).

At the end (`finish`), after the workers stopped their devices and told how many events their broker acked
(ACKED_MSG), the master reads until the observer gave that many arrivals in all, or stopped moving for a
second, or `settle_s` passed (the same rule as ArrivalPump.drain), sends the rest and then DONE_MSG: a worker
closes its books and sends its final message on DONE_MSG, so its join has every arrival the master saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import gevent

from simulator.observers.base import Observer, Releasing
from simulator.observers.forwarded import arrival_to_row

__all__ = ["ACKED_MSG", "ARRIVALS_MSG", "DONE_MSG", "ArrivalForwarder", "start_forwarder"]

log = logging.getLogger("fleetsim.arrivals")

ARRIVALS_MSG = "fleetsim_arrivals"  # master -> worker: {"rows": [arrival_to_row, ...]}
DONE_MSG = "fleetsim_arrivals_done"  # master -> worker: no more arrivals; close the books, send the final
ACKED_MSG = "fleetsim_acked"  # worker -> master, at test stop: {"worker_index": i, "acked": n}
PULL_S = 1.0  # as ArrivalPump: one read of the observer a second
# Rows per message: ~60 B each in msgpack, so ~300 KB; a burst of arrivals goes as several messages.
CHUNK = 5_000


class ArrivalForwarder:
    """Reads `observer` and sends each worker its partition's arrivals through `send(msg_type, data, client)`."""

    def __init__(self, observer: Observer, device_ids: Sequence[str], worker_count: int,
                 clients: Callable[[], dict[int, str]], send: Callable[[str, dict[str, Any], str], None],
                 release: Callable[[int], None] | None = None) -> None:
        self.observer = observer
        self.worker_of = {device: i % worker_count for i, device in enumerate(device_ids)}  # O(devices)
        self.clients = clients  # worker index -> Locust client id, as the master numbered its workers
        self.send = send
        self.release = release
        self.cursor = 0  # arrivals read from the observer so far
        self.forwarded = 0
        self.strangers = 0  # arrivals of devices not in the plan (sent to worker 0)
        self.unsent = 0  # arrivals of a worker the master no longer knows: counted and logged, never silently
        self.error = ""  # the observer failed at the end (finish): the workers' books lack what it did not give
        self.read_at: float | None = None  # wall s of the last read the observer answered (ObserverLoss)
        self._greenlet: Any = None

    def forward(self) -> int:
        """One read: sends what the observer got since the last one; returns how many arrivals it read."""
        page = self.observer.arrivals(self.cursor)
        self.read_at = time.time()
        if not page:
            return 0
        self.cursor += len(page)
        by_worker: dict[int, list[Any]] = {}
        for arrival in page:
            worker = self.worker_of.get(arrival.key[0])
            if worker is None:
                self.strangers += 1
                worker = 0
            by_worker.setdefault(worker, []).append(arrival_to_row(arrival))
        clients = self.clients()
        for worker, rows in sorted(by_worker.items()):
            client = clients.get(worker)
            if client is None:
                self.unsent += len(rows)
                log.warning("%d arrivals of worker %d not forwarded: no such worker connected", len(rows), worker)
                continue
            for start in range(0, len(rows), CHUNK):
                self.send(ARRIVALS_MSG, {"rows": rows[start:start + CHUNK]}, client)
            self.forwarded += len(rows)
        if self.release is not None:
            self.release(self.cursor)
        return len(page)

    def _loop(self) -> None:
        while True:
            gevent.sleep(PULL_S)
            try:
                self.forward()
            except Exception as exc:  # the final read retries; a failing observer must not end the run
                log.warning("forwarding arrivals: %s", exc)

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def finish(self, expected: int, settle_s: float) -> None:
        """After the workers stopped: forward until `expected` arrivals in all (or quiet, or `settle_s`), then
        tell every worker that nothing more comes."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        deadline = time.monotonic() + settle_s
        last_change = time.monotonic()
        try:
            while True:
                if self.forward():
                    last_change = time.monotonic()
                now = time.monotonic()
                if self.cursor >= expected or now >= deadline or now - last_change > 1.0:
                    break
                gevent.sleep(0.1)
            self.forward()
        except Exception as exc:  # the workers still close their books with what came: the run ends, and says so
            self.error = str(exc)
            log.warning("forwarding arrivals at the end: %s", exc)
        for client in self.clients().values():
            self.send(DONE_MSG, {"forwarded": self.forwarded, "strangers": self.strangers}, client)

    def finish_after_stop(self, acked: dict[int, int], workers: int, wait_s: float, settle_s: float) -> None:
        """`finish` once every worker said what its broker acked (`acked`, filled by ACKED_MSG; at most
        `wait_s`: a worker that never says is not waited for, and its share may be cut short)."""
        deadline = time.monotonic() + wait_s
        while len(acked) < workers and time.monotonic() < deadline:
            gevent.sleep(0.05)
        self.finish(sum(acked.values()), settle_s)


def start_forwarder(observer: Observer | None, forward: bool, device_ids: Sequence[str], runner: Any,
                    workers: int) -> ArrivalForwarder | None:
    """A Locust master's forwarder, started, when its run forwards arrivals (RunSettings.forward_arrivals)."""
    if observer is None or not forward or workers <= 0:
        return None

    def clients() -> dict[int, str]:
        return {int(index): str(client) for client, index in dict(runner.worker_indexes).items()}

    def send(msg_type: str, data: dict[str, Any], client: str) -> None:
        runner.send_message(msg_type, data, client_id=client)

    # Trigger observers: forwarded arrivals leave the master.
    forwarder = ArrivalForwarder(observer, device_ids, workers, clients, send,
                                 observer.release if isinstance(observer, Releasing) else None)
    forwarder.start()
    return forwarder
