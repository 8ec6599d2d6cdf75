"""A Locust worker's arrivals when the run's observer is a trigger's: forwarded by its master, its partition only.

Why forwarding (issue 14): a trigger observer (AMQP queue, webhook endpoint: simulator.observers.amqp_trigger,
webhook_trigger) is one consumer that only the master holds, so workers could not pull their arrivals the way
they page the embedded collector, and shipped their whole send logs for the master to join at the end. The
master now reads its observer as the run plays and sends each worker the arrivals of its devices (device
index % worker count, the fleet's partition) in Locust messages (locust_adapter.arrival_forward); each worker
joins them live with its own send log, spooled to its disk, exactly as against the embedded collector, and
ships aggregates. This was chosen over the master joining the workers' spooled send files: that needs the
files on the master's disk (not so with workers on other hosts, docs/multi-host.md) and a join of every
event on one process, while forwarding spreads the join over the workers and needs only the Locust channel.

`ForwardedArrivals` is the worker's Observer: the master's messages `add` to it, the worker's ArrivalPump reads
it by cursor, and what the pump has read is dropped (memory holds the arrivals not joined yet). Its fence is
the master's (offset and uncertainty measured at the master's mark): nothing is filtered here, the master's
observer already dropped other runs' events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from simulator.observers.fence import RunFence
from simulator.records import ArrivalRecord

__all__ = ["ForwardedArrivals", "arrival_from_row", "arrival_to_row"]

ArrivalRow = tuple[str, str, str, int, int, float, int | None, int, str]


def arrival_to_row(a: ArrivalRecord) -> ArrivalRow:
    """One arrival as msgpack-able cells (Locust's wire format)."""
    device, uuid, status, progress, occurrence = a.key
    return (device, uuid, status, progress, occurrence, a.arrival, a.t_ms, a.qos, a.code)


def arrival_from_row(cells: Sequence[object]) -> ArrivalRecord:
    t_ms = cells[6]
    return ArrivalRecord((str(cells[0]), str(cells[1]), str(cells[2]), int(str(cells[3])), int(str(cells[4]))),
                         float(str(cells[5])), None if t_ms is None else int(str(t_ms)), int(str(cells[7])),
                         str(cells[8]))


class ForwardedArrivals:
    """The arrivals the master forwarded to this worker, in the order it sent them."""

    name = "forwarded"

    def __init__(self, fence: RunFence) -> None:
        self._fence = fence
        self._lock = threading.Lock()
        self._rows: list[ArrivalRecord] = []
        self._read = 0  # arrivals dropped from the front: the reader had them
        self.done = False  # the master sent its last arrivals (`finish`)

    def start(self) -> None:
        return None

    @property
    def fence(self) -> RunFence | None:
        return self._fence

    def add(self, rows: Iterable[ArrivalRecord]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def finish(self) -> None:
        self.done = True

    def arrival_count(self) -> int:
        with self._lock:
            return self._read + len(self._rows)

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        """From number `since` on; the ones before it are dropped (one reader, moving forward)."""
        with self._lock:
            if since < self._read:
                raise ValueError(f"forwarded arrivals before {self._read} were read already; asked from {since}")
            del self._rows[:since - self._read]
            self._read = since
            return list(self._rows)

    def stop(self) -> None:
        return None
