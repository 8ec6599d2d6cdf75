"""An Astarte AppEngine export of a device's OTAEvent datastream -> replay entries.

Source: `GET /appengine/v1/<realm>/devices/<id>/interfaces/io.edgehog.devicemanager.OTAEvent[/event]`, saved
as JSON. The object-aggregated datastream comes in the three `format`s AppEngine knows
(astarte_appengine_api InterfaceValuesRequest; pack_result in device/queries.ex):
- "structured" (default): `{"data": [{"timestamp": T, "requestUUID": ..., "status": ..., ...}, ...]}`;
  asked on the interface root instead of `/event`, the list sits under the path token:
  `{"data": {"event": [...]}}`;
- "table": `{"data": [[T, v1, v2, ...], ...], "metadata": {"columns": {"timestamp": 0, "requestUUID": 1, ...},
  "table_header": [...]}}` (the column map needs `retrieve_metadata=true`);
- "disjoint_tables": `{"data": {"requestUUID": [[v, T], ...], "status": [[v, T], ...], ...}}` (rows zipped
  by position).
`T` is an ISO 8601 UTC string ("2026-01-01T10:00:00.123Z") or epoch milliseconds. For OTAEvent
(explicit_timestamp) it is the device's `t`, i.e. when the runtime sent the event. Missing leaves take the
runtime's defaults ("" and 0, docs/protocol.md section 4). Pages fetched with `since_after` can be given as several
files for one device. Reboots are inferred like a recorded run's (simulator.replay.recorder.infer_reboots).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.errors import UsageError
from simulator.events import OtaStatus
from simulator.replay.recorder import infer_reboots
from simulator.replay.replay_file import ReplayEntry, ReplayEvent, ReplayHeader

__all__ = ["export_rows", "import_exports", "parse_export_specs", "parse_timestamp"]

_LEAVES = ("requestUUID", "status", "statusProgress", "statusCode", "message")
_STATUSES = frozenset(str(s) for s in OtaStatus)


def parse_timestamp(value: object, where: str) -> float:
    """Epoch seconds of an AppEngine timestamp (ISO 8601 string or epoch milliseconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(f"{where}: timestamp: not ISO 8601: {value!r}") from None
        if when.tzinfo is None:
            raise UsageError(f"{where}: timestamp: no time zone in {value!r} (AppEngine writes UTC, `...Z`)")
        return when.timestamp()
    raise UsageError(f"{where}: timestamp: expected an ISO 8601 string or epoch ms, got {value!r}")


def _table_rows(doc: Mapping[str, Any], data: list[Any], where: str) -> list[dict[str, Any]]:
    meta = doc.get("metadata") or {}
    columns = meta.get("columns") if isinstance(meta, Mapping) else None
    header = meta.get("table_header") if isinstance(meta, Mapping) else None
    if isinstance(columns, Mapping):
        names = {int(i): str(n) for n, i in columns.items()}
    elif isinstance(header, list):
        names = dict(enumerate(str(h) for h in header))
    else:
        raise UsageError(
            f"{where}: a `format=table` export without metadata: fetch it with retrieve_metadata=true"
        )
    rows = []
    for r, row in enumerate(data):
        if not isinstance(row, list):
            raise UsageError(f"{where}: data[{r}]: expected a row (list), got {type(row).__name__}")
        rows.append({names[i]: cell for i, cell in enumerate(row) if i in names})
    return rows


def _disjoint_rows(data: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for leaf, pairs in data.items():
        if not isinstance(pairs, list):
            raise UsageError(f"{where}: data.{leaf}: expected a list of [value, timestamp] pairs")
        for i, pair in enumerate(pairs):
            if not isinstance(pair, list) or len(pair) != 2:
                raise UsageError(f"{where}: data.{leaf}[{i}]: expected [value, timestamp]")
            while len(rows) <= i:
                rows.append({})
            rows[i][leaf] = pair[0]
            rows[i].setdefault("timestamp", pair[1])
    return rows


def export_rows(doc: object, where: str) -> list[dict[str, Any]]:
    """The rows (leaf -> value, plus "timestamp") of one AppEngine export document, any format."""
    if not isinstance(doc, Mapping) or "data" not in doc:
        raise UsageError(f'{where}: not an AppEngine export (expected a JSON object with "data")')
    data = doc["data"]
    if isinstance(data, Mapping) and isinstance(data.get("event"), list | Mapping) and "status" not in data:
        data = data["event"]  # asked on the interface root: grouped by the object's path token
    if isinstance(data, list):
        if all(isinstance(r, Mapping) for r in data):
            return [dict(r) for r in data]
        return _table_rows(doc, data, where)
    if isinstance(data, Mapping) and all(isinstance(v, list) for v in data.values()):
        return _disjoint_rows(data, where)
    raise UsageError(f"{where}: data: expected a list of objects, a table or disjoint tables")


def _event(device: str, row: Mapping[str, Any], where: str) -> tuple[float, ReplayEvent]:
    if "timestamp" not in row:
        raise UsageError(f"{where}: no timestamp")
    when = parse_timestamp(row["timestamp"], where)
    status, uuid = row.get("status"), row.get("requestUUID")
    if not isinstance(status, str) or status not in _STATUSES:
        raise UsageError(f"{where}: status: expected one of {', '.join(sorted(_STATUSES))}, got {status!r}")
    if not isinstance(uuid, str) or not uuid:
        raise UsageError(f"{where}: requestUUID: missing or not text ({uuid!r})")
    progress = row.get("statusProgress", 0)
    if isinstance(progress, str) and progress.isdigit():
        progress = int(progress)  # allow_bigintegers=false renders integers as strings
    if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        raise UsageError(f"{where}: statusProgress: expected an integer 0..100, got {progress!r}")
    code, message = row.get("statusCode") or "", row.get("message") or ""
    return when, ReplayEvent(
        device=device,
        at=0.0,
        request_uuid=uuid,
        status=status,
        progress=progress,
        code=str(code),
        message=str(message),
    )


def import_exports(
    exports: Sequence[tuple[str, str | os.PathLike[str]]],
    realm: str = "fleetsim",
) -> tuple[ReplayHeader, list[ReplayEntry]]:
    """(device id, export file) pairs -> replay entries, times relative to the earliest event of all."""
    timed: list[tuple[float, ReplayEvent]] = []
    for device, path in exports:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a JSON AppEngine export: {exc}") from None
        for i, row in enumerate(export_rows(doc, str(path))):
            timed.append(_event(device, row, f"{path}: data[{i}]"))
    if not timed:
        raise UsageError("the AppEngine exports hold no OTAEvent")
    t0 = min(t for t, _ in timed)
    timed.sort(key=lambda item: item[0])
    events = [
        ReplayEvent(
            device=e.device,
            at=t - t0,
            request_uuid=e.request_uuid,
            status=e.status,
            progress=e.progress,
            code=e.code,
            message=e.message,
        )
        for t, e in timed
    ]
    devices = sorted({d for d, _ in exports})
    header = ReplayHeader(
        realm=realm,
        source="appengine:" + ",".join(str(p) for _, p in exports),
        note=f"AppEngine OTAEvent export of {len(devices)} device(s), {len(events)} events; reboots inferred",
    )
    entries: list[ReplayEntry] = [*events, *infer_reboots(events)]
    return header, entries


def parse_export_specs(specs: Iterable[str]) -> list[tuple[str, str]]:
    """`ID=FILE` (or a FILE named `<ID>.json`) -> (id, file)."""
    out = []
    for spec in specs:
        if "=" in spec:
            device, path = spec.split("=", 1)
        else:
            device, path = Path(spec).stem, spec
        out.append((device.strip(), path.strip()))
    return out
