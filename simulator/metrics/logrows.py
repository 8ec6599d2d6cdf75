"""Send/arrival records <-> flat rows (CSV files, worker exports), in the column order of simulator.records.

Columns are `SEND_LOG_HEADER` / `ARRIVAL_LOG_HEADER` (the last, `code`, is the statusCode; files without it still read).
Empty cells mean None. Times are wall-clock seconds since the epoch, written with microsecond precision.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.records import ARRIVAL_LOG_HEADER, SEND_LOG_HEADER, ArrivalRecord, SendRecord

__all__ = [
    "ARRIVAL_COLUMNS",
    "SEND_COLUMNS",
    "Row",
    "arrival_from_row",
    "arrival_to_row",
    "send_from_row",
    "send_to_row",
]

SEND_COLUMNS = SEND_LOG_HEADER
ARRIVAL_COLUMNS = ARRIVAL_LOG_HEADER

Row = list[str]


def _t(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _opt_float(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def _opt_int(cell: str) -> int | None:
    return None if cell == "" else int(cell)


def send_to_row(rec: SendRecord) -> Row:
    device, uuid, status, progress, occurrence = rec.key
    return [device, uuid, status, str(progress), str(occurrence), _t(rec.intended), _t(rec.sent),
            "" if rec.t_ms is None else str(rec.t_ms), _t(rec.acked), rec.error or "", rec.code]


def send_from_row(row: Sequence[str]) -> SendRecord:
    """Inverse of send_to_row; raises ValueError on a malformed row (callers name the file and line)."""
    cells = list(row) + [""] * (len(SEND_COLUMNS) - len(row))
    return SendRecord(
        key=(cells[0], cells[1], cells[2], int(cells[3]), int(cells[4])),
        intended=float(cells[5]), sent=_opt_float(cells[6]), t_ms=_opt_int(cells[7]),
        acked=_opt_float(cells[8]), error=cells[9] or None, code=cells[10],
    )


def arrival_to_row(rec: ArrivalRecord) -> Row:
    device, uuid, status, progress, occurrence = rec.key
    return [device, uuid, status, str(progress), str(occurrence), _t(rec.arrival),
            "" if rec.t_ms is None else str(rec.t_ms), str(rec.qos), rec.code]


def arrival_from_row(row: Sequence[str]) -> ArrivalRecord:
    cells = list(row) + [""] * (len(ARRIVAL_COLUMNS) - len(row))
    return ArrivalRecord(
        key=(cells[0], cells[1], cells[2], int(cells[3]), int(cells[4])),
        arrival=float(cells[5]), t_ms=_opt_int(cells[6]), qos=int(cells[7] or 2), code=cells[8],
    )
