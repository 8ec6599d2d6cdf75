"""The answered OTA operations of a backend-driven run (mode responder / campaign), on disk, tallied as they come.

Issue 14: the process that writes the results kept one OperationRecord per operation (a dict by (device, uuid))
until the end, so its memory grew with the operations a long responder run answered. An `OperationSpool` holds,
per device, its last `HOLD_PER_DEVICE` closed operations (memory grows with devices), appends older ones to a
CSV file in the run's spool directory, and feeds each row it writes into a `CampaignTally` (counters and
latency tallies). `campaign_report(spool, tally=spool.tally, ...)` then reads the file back twice, a row at a
time, for the in-flight slots and the convergence with the backend's view.

Why hold a few per device: an operation can arrive in pieces (a worker ships it once its final is acked; the
backend re-sending the uuid afterwards opens a second piece on the device), and the pieces must fold into one
row (`merge_operation`) before anything is counted. The device answers every request it is sent (an Update
with a uuid it finished, while idle, is run again; while busy it is refused at once: simulator.device
`_on_data`), so a second piece closes within one operation's time and reaches the spool while its first piece
is still among the device's last ones (or, cut open at the run's end, with the final export). Four leave
room for refused concurrent requests in between. A piece of an operation older than the device's last four
would be written as a second row for its (device, uuid) and counted twice: keeping every key to catch that
would be the O(operations) memory this module removes. The rows are ordered as written, not by time.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from simulator.metrics.campaign import CampaignTally, DownloadStats, OperationRecord, merge_operation

__all__ = ["HOLD_PER_DEVICE", "OperationSpool", "record_from_row", "record_to_row"]

HOLD_PER_DEVICE = 4
FILE_NAME = "operations.csv"
COLUMNS = ("device", "uuid", "requested_at", "operation", "updates", "cancels", "acked_at", "final_at",
           "last_status", "last_code", "final_sent_at", "download_attempts", "download_errors", "download_bytes",
           "download_seconds", "download_done_at", "download_http_status")


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)  # repr: the float read back is the one written


def _opt(text: str) -> float | None:
    return None if text == "" else float(text)


def record_to_row(r: OperationRecord) -> list[str]:
    d = r.download
    dl = ["", "", "", "", "", ""] if d is None else [
        str(d.attempts), json.dumps(list(d.errors)), str(d.bytes), repr(d.seconds), repr(d.done_at),
        str(d.http_status)]
    return [r.device, r.uuid, repr(r.requested_at), r.operation, str(r.updates), str(r.cancels), _num(r.acked_at),
            _num(r.final_at), r.last_status, r.last_code, _num(r.final_sent_at), *dl]


def record_from_row(row: list[str]) -> OperationRecord:
    download = None
    if row[11] != "":
        download = DownloadStats(int(row[11]), tuple(str(e) for e in json.loads(row[12])), int(row[13]),
                                 float(row[14]), float(row[15]), int(row[16]))
    return OperationRecord(row[0], row[1], float(row[2]), row[3], int(row[4]), int(row[5]), _opt(row[6]),
                           _opt(row[7]), row[8], row[9], _opt(row[10]), download)


class OperationSpool:
    """Operations by (device, uuid), pieces folded: a few per device in memory, the rest in `directory`/
    operations.csv (created on the first row). Iterating gives every operation once: the file's rows, then the
    held ones. `discard()` removes the file."""

    def __init__(self, directory: Path, hold: int = HOLD_PER_DEVICE) -> None:
        self.path = directory / FILE_NAME
        self.hold = hold
        self.held: dict[str, dict[str, OperationRecord]] = {}  # device -> uuid -> record, oldest first
        self.tally = CampaignTally()  # of the rows written; `close()` writes the held ones too
        self.written = 0
        self.closed = False
        self._file: IO[str] | None = None
        self._writerow: Callable[[Iterable[str]], object] | None = None

    def add(self, records: Iterable[OperationRecord]) -> None:
        """Fold these records (whole operations or pieces of them) in."""
        if self.closed:
            raise RuntimeError("operation spool closed: its tally is final")
        for record in records:
            ops = self.held.setdefault(record.device, {})
            known = ops.pop(record.uuid, None)
            ops[record.uuid] = record if known is None else merge_operation(known, record)  # now the newest
            if len(ops) > self.hold:
                oldest = next(iter(ops))
                self._write(ops.pop(oldest))

    def _write(self, record: OperationRecord) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self._writerow = csv.writer(self._file).writerow
            self._writerow(COLUMNS)
        assert self._writerow is not None
        self._writerow(record_to_row(record))
        self.tally.add(record)
        self.written += 1

    def close(self) -> OperationSpool:
        """Write the held operations too (after the last `add`): the tally and the file are then complete."""
        if not self.closed:
            self.closed = True
            for ops in self.held.values():
                for record in ops.values():
                    self._write(record)
            self.held.clear()
            if self._file is not None:
                self._file.close()
        return self

    def __iter__(self) -> Iterator[OperationRecord]:
        """Every operation, one row at a time (the file is read anew each time: iterate it as often as needed)."""
        if self._file is not None and not self._file.closed:
            self._file.flush()
        if self._file is not None:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = csv.reader(f)
                next(rows, None)  # the header
                for row in rows:
                    yield record_from_row(row)
        for ops in list(self.held.values()):
            yield from list(ops.values())

    def discard(self) -> None:
        self.close()
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
                self.path.parent.rmdir()  # this spool's own directory, once empty
                if self.path.parent.parent.name == ".spool":  # the results root's, once no process spools there
                    self.path.parent.parent.rmdir()
