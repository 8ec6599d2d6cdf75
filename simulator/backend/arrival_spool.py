"""The collector's arrival log on disk, paged by row index, and its occurrence numbering in bounded memory.

`ArrivalSpool` appends each OTAEvent arrival as a CSV row (events.arrivals.csv's columns) to a file in the
backend's state dir and keeps only a sparse index (the byte offset of every CHECKPOINT-th row), so
`read(since)` seeks near row `since` instead of holding every ArrivalRecord in memory (issue 14: a one-hour
run at 2,600 events/s is ~9.4 M arrivals). Without a path (tests, a collector with no state dir) rows are
kept in a list, as before.

`RecentKeyBook` numbers occurrences like events.KeyBook but remembers, per device, only its last
KEPT_OPERATIONS request UUIDs: an event of an older operation numbers from 0 again (a late re-delivery of
it is then the same key as the original: a duplicate to the join, which is what it is).
"""

from __future__ import annotations

import csv
import io
import os
from array import array
from collections import OrderedDict
from pathlib import Path

from simulator.events import EventKey
from simulator.metrics.logrows import ARRIVAL_COLUMNS, arrival_from_row, arrival_to_row
from simulator.records import ArrivalRecord

__all__ = ["ArrivalSpool", "RecentKeyBook"]

CHECKPOINT = 1024  # rows between two indexed offsets: 8 bytes of index per 1,024 arrivals
KEPT_OPERATIONS = 4  # request UUIDs per device whose occurrence counts are kept


class ArrivalSpool:
    """Append-only arrival log; not thread-safe (the collector calls it under its lock)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.count = 0
        self._rows: list[ArrivalRecord] = []
        self._index = array("q")  # byte offset of rows 0, CHECKPOINT, 2*CHECKPOINT, ...
        self._file: io.TextIOWrapper | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Open for the collector's lifetime (closed by close()); a new backend starts a new log.
            self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._file.write(",".join(ARRIVAL_COLUMNS) + "\n")
            self._writer = csv.writer(self._file, lineterminator="\n")

    def append(self, rec: ArrivalRecord) -> None:
        if self._file is None:
            self._rows.append(rec)
        else:
            if self.count % CHECKPOINT == 0:
                self._file.flush()
                self._index.append(self._file.tell())
            self._writer.writerow(arrival_to_row(rec))
        self.count += 1

    def read(self, since: int = 0, limit: int | None = None) -> list[ArrivalRecord]:
        """Rows from index `since` (at most `limit`)."""
        since = max(0, since)
        end = self.count if limit is None else min(self.count, since + limit)
        if since >= end:
            return []
        if self._file is None or self.path is None:
            return self._rows[since:end]
        self._file.flush()
        out: list[ArrivalRecord] = []
        with open(self.path, encoding="utf-8", newline="") as f:
            f.seek(self._index[since // CHECKPOINT])
            row = since // CHECKPOINT * CHECKPOINT
            for cells in csv.reader(f):
                if row >= end:
                    break
                if row >= since:
                    out.append(arrival_from_row(cells))
                row += 1
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RecentKeyBook:
    """events.KeyBook's numbering, forgetting a device's operations older than its last KEPT_OPERATIONS."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        # device -> request UUID (least recently opened first) -> (status, progress) -> count
        self._ops: dict[str, OrderedDict[str, dict[tuple[str, int], int]]] = {}

    def key(self, device: str, request_uuid: str, status: str, progress: int) -> EventKey:
        ops = self._ops.get(device)
        if ops is None:
            ops = self._ops[device] = OrderedDict()
        counts = ops.get(request_uuid)
        if counts is None:
            counts = ops[request_uuid] = {}
            while len(ops) > KEPT_OPERATIONS:
                ops.popitem(last=False)
        n = counts.get((status, progress), 0)
        counts[(status, progress)] = n + 1
        return (device, request_uuid, status, progress, n)
