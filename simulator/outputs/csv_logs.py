"""events.sent.csv, events.arrivals.csv (records.py headers + `code`) and timeseries.csv (one row per second).

Plain CSV (stdlib `csv`), a header line first; a `.gz` file name writes/reads gzip. A malformed row is one
UsageError naming the file, the line and the column (simulator.errors), never a traceback.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from simulator.errors import UsageError
from simulator.metrics.logrows import (
    ARRIVAL_COLUMNS,
    SEND_COLUMNS,
    arrival_from_row,
    arrival_to_row,
    send_from_row,
    send_to_row,
)
from simulator.metrics.series import SERIES_COLUMNS
from simulator.records import ArrivalRecord, SendRecord

__all__ = [
    "ARRIVALS_FILE",
    "SENT_FILE",
    "TIMESERIES_FILE",
    "read_arrival_log",
    "read_send_log",
    "read_timeseries",
    "write_arrival_log",
    "write_send_log",
    "write_timeseries",
]

SENT_FILE = "events.sent.csv"
ARRIVALS_FILE = "events.arrivals.csv"
TIMESERIES_FILE = "timeseries.csv"

T = TypeVar("T")
PathLike = str | os.PathLike[str]


@contextmanager
def _open(path: PathLike, mode: str) -> Iterator[IO[str]]:
    if str(path).endswith(".gz"):
        with gzip.open(path, mode + "t", encoding="utf-8", newline="") as f:
            yield f  # type: ignore[misc]  # text mode: a TextIOWrapper
    else:
        with open(path, mode, encoding="utf-8", newline="") as f:
            yield f


def _write(path: PathLike, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Path:
    with _open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def _read(path: PathLike, header: Sequence[str], parse: Callable[[list[str]], T]) -> list[T]:
    out: list[T] = []
    try:
        with _open(path, "r") as f:
            reader = csv.reader(f)
            first = next(reader, None)
            if first is None or list(first[: len(header) - 1]) != list(header[: len(header) - 1]):
                raise UsageError(f"{path}:1: header: expected {','.join(header)}")
            for row in reader:
                try:
                    out.append(parse(row))
                except (ValueError, IndexError) as exc:
                    raise UsageError(f"{path}:{reader.line_num}: {exc}") from None
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    return out


def write_send_log(path: PathLike, records: Iterable[SendRecord]) -> Path:
    return _write(path, SEND_COLUMNS, (send_to_row(r) for r in records))


def write_arrival_log(path: PathLike, records: Iterable[ArrivalRecord]) -> Path:
    return _write(path, ARRIVAL_COLUMNS, (arrival_to_row(r) for r in records))


def read_send_log(path: PathLike) -> list[SendRecord]:
    return _read(path, SEND_COLUMNS, send_from_row)


def read_arrival_log(path: PathLike) -> list[ArrivalRecord]:
    return _read(path, ARRIVAL_COLUMNS, arrival_from_row)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_timeseries(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """One line per second; empty cell = no value that second (e.g. no ack, so no ack latency)."""
    return _write(path, SERIES_COLUMNS, ([_cell(row.get(col)) for col in SERIES_COLUMNS] for row in rows))


def _series_row(header: Sequence[str]) -> Callable[[list[str]], dict[str, Any]]:
    def parse(row: list[str]) -> dict[str, Any]:
        if len(row) != len(header):
            raise ValueError(f"expected {len(header)} columns, got {len(row)}")
        out: dict[str, Any] = {}
        for col, cell in zip(header, row, strict=True):
            if cell == "":
                out[col] = None
            elif col.endswith("_ms"):
                try:
                    out[col] = float(cell)
                except ValueError:
                    raise ValueError(f"{col}: not a number: {cell!r}") from None
            else:
                try:
                    out[col] = int(cell)
                except ValueError:
                    raise ValueError(f"{col}: not an integer: {cell!r}") from None
        return out

    return parse


def read_timeseries(path: PathLike) -> list[dict[str, Any]]:
    """Rows as dicts keyed by the file's own header (so older/newer column sets still load)."""
    try:
        with _open(path, "r") as f:
            header = next(csv.reader(f), None)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    if not header or header[0] != "second":
        raise UsageError(f"{path}:1: header: expected {','.join(SERIES_COLUMNS)}")
    return _read(path, header, _series_row(header))
