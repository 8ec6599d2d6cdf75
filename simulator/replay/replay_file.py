"""The replay file: a recorded OTAEvent stream, one JSON document per line (JSON Lines, UTF-8).

Written by `fleetsim replay --record RUN_DIR` (from a run's events.sent.csv), by the AppEngine importer
(simulator.replay.appengine_import) or by hand (the field-bug fixtures in simulator/replay/fixtures/); played
by `fleetsim replay FILE` (simulator.replay.player). Shape:

    {"format": "fleetsim-replay", "version": 1, "realm": "fleetsim", "source": "...", "note": "..."}
    {"kind": "event", "device": "<22-char id>", "at": 0.25, "requestUUID": "...", "status": "Acknowledged",
     "statusProgress": 0, "statusCode": "", "message": ""}
    {"kind": "reboot", "device": "...", "at": 12.5, "offline": 3.0}
    {"kind": "property", "device": "...", "at": 15.5, "interface": "io.edgehog.devicemanager.BaseImage",
     "path": "/version", "value": "1.1.0"}

- line 1 is the header; every other line is one entry. Blank lines and lines starting with `#` (or `//`) are
  comments.
- `at`: seconds from the recording's start (float >= 0). A player keeps, per device, the order of the entries
  in time (equal times: file order) and the gaps between them, scaled by 1/speed.
- `event`: the five leaves of io.edgehog.devicemanager.OTAEvent (docs/protocol.md section 1); `status` one of the
  runtime's statuses (simulator.events.OtaStatus); `statusProgress` an int32 0..100; `statusCode` and
  `message` free strings ("" when unset, as the runtime sends them).
- `reboot`: the device disconnects at `at` and reconnects `offline` seconds later (redoing the Astarte
  handshake), as edgehog-device-runtime does between Rebooting and Success (docs/protocol.md section 4).
- `property`: a device-owned property set (e.g. BaseImage /version after the reboot).
Every problem is reported as `file:line: field: message` (simulator.errors.ConfigErrors), never a traceback.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError, ConfigErrors, UsageError
from simulator.events import OtaStatus

__all__ = [
    "FORMAT",
    "VERSION",
    "ReplayEntry",
    "ReplayEvent",
    "ReplayHeader",
    "ReplayProperty",
    "ReplayReboot",
    "devices_in_order",
    "read_replay",
    "write_replay",
]

FORMAT = "fleetsim-replay"
VERSION = 1
_STATUSES = frozenset(str(s) for s in OtaStatus)


@dataclass(frozen=True)
class ReplayHeader:
    realm: str = "fleetsim"
    source: str = ""  # where it was recorded from (a run dir, an AppEngine export, "fixture")
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "realm": self.realm,
            "source": self.source,
            "note": self.note,
        }


@dataclass(frozen=True)
class ReplayEvent:
    device: str
    at: float  # seconds from the recording's start
    request_uuid: str
    status: str
    progress: int = 0
    code: str = ""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "event",
            "device": self.device,
            "at": round(self.at, 6),
            "requestUUID": self.request_uuid,
            "status": self.status,
            "statusProgress": self.progress,
            "statusCode": self.code,
            "message": self.message,
        }


@dataclass(frozen=True)
class ReplayReboot:
    device: str
    at: float
    offline: float  # seconds the device stays disconnected

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "reboot",
            "device": self.device,
            "at": round(self.at, 6),
            "offline": round(self.offline, 6),
        }


@dataclass(frozen=True)
class ReplayProperty:
    device: str
    at: float
    interface: str
    path: str
    value: str | int | float | bool

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "property",
            "device": self.device,
            "at": round(self.at, 6),
            "interface": self.interface,
            "path": self.path,
            "value": self.value,
        }


ReplayEntry = ReplayEvent | ReplayReboot | ReplayProperty


def write_replay(path: str | os.PathLike[str], header: ReplayHeader, entries: Iterable[ReplayEntry]) -> Path:
    """Write header + entries sorted by time (stable: each device keeps its order)."""
    ordered = sorted(entries, key=lambda e: e.at)
    out = Path(path)
    if out.parent != Path("."):
        out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(json.dumps(header.to_json(), separators=(", ", ": ")) + "\n")
        for entry in ordered:
            f.write(json.dumps(entry.to_json(), separators=(", ", ": ")) + "\n")
    return out


class _LineReader:
    """Typed field access on one JSON line, collecting errors with the file and line."""

    def __init__(self, source: str, line: int, doc: dict[str, Any], errors: list[ConfigError]) -> None:
        self.source, self.line, self.doc, self.errors = source, line, doc, errors

    def fail(self, field: str, message: str) -> None:
        self.errors.append(ConfigError(self.source, self.line, field, message))

    def text(self, key: str, default: str | None = None) -> str:
        value = self.doc.get(key, default)
        if not isinstance(value, str):
            self.fail(key, "missing (required)" if value is None else f"expected text, got {value!r}")
            return ""
        return value

    def number(self, key: str, minimum: float = 0.0) -> float:
        value = self.doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(key, "missing (required)" if value is None else f"expected a number, got {value!r}")
            return 0.0
        if value < minimum:
            self.fail(key, f"must be >= {minimum:g} seconds, got {value!r}")
            return minimum
        return float(value)

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        value = self.doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self.fail(key, f"must be {low}..{high}, got {value}")
            return default
        return value


def _entry(r: _LineReader) -> ReplayEntry | None:
    kind = r.doc.get("kind")
    device = r.text("device")
    at = r.number("at")
    if kind == "event":
        status = r.text("status")
        if status and status not in _STATUSES:
            r.fail("status", f"unknown OTA status {status!r} (one of: {', '.join(sorted(_STATUSES))})")
        return ReplayEvent(
            device=device,
            at=at,
            request_uuid=r.text("requestUUID"),
            status=status,
            progress=r.integer("statusProgress", 0, 100, 0),
            code=r.text("statusCode", ""),
            message=r.text("message", ""),
        )
    if kind == "reboot":
        return ReplayReboot(device=device, at=at, offline=r.number("offline"))
    if kind == "property":
        value = r.doc.get("value")
        if not isinstance(value, str | int | float | bool):
            r.fail("value", f"expected a string, number or boolean, got {value!r}")
            value = ""
        return ReplayProperty(
            device=device, at=at, interface=r.text("interface"), path=r.text("path"), value=value
        )
    r.fail("kind", f"expected 'event', 'reboot' or 'property', got {kind!r}")
    return None


def _header(source: str, doc: dict[str, Any], errors: list[ConfigError]) -> ReplayHeader:
    r = _LineReader(source, 1, doc, errors)
    if doc.get("format") != FORMAT:
        r.fail("format", f'not a fleetsim replay file (line 1 must be the header with "format": "{FORMAT}")')
    elif doc.get("version") != VERSION:
        r.fail("version", f"unsupported version {doc.get('version')!r} (this fleetsim reads {VERSION})")
    return ReplayHeader(
        realm=r.text("realm", "fleetsim"), source=r.text("source", ""), note=r.text("note", "")
    )


def read_replay(path: str | os.PathLike[str]) -> tuple[ReplayHeader, list[ReplayEntry]]:
    """Parse a replay file; ConfigErrors listing every bad line, UsageError when it cannot be read."""
    source = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"{source}: no such replay file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source}: unreadable: {exc}") from None
    errors: list[ConfigError] = []
    header: ReplayHeader | None = None
    entries: list[ReplayEntry] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#") or text.startswith("//"):
            continue
        try:
            doc = json.loads(text)
        except ValueError as exc:
            errors.append(ConfigError(source, number, "", f"not valid JSON: {exc}"))
            continue
        if not isinstance(doc, dict):
            errors.append(ConfigError(source, number, "", "expected a JSON object"))
            continue
        if header is None:
            header = _header(source, doc, errors)
            continue
        entry = _entry(_LineReader(source, number, doc, errors))
        if entry is not None:
            entries.append(entry)
    if header is None:
        errors.append(ConfigError(source, 0, "", "empty replay file (no header line)"))
    if errors:
        raise ConfigErrors(errors)
    assert header is not None
    return header, entries


def devices_in_order(entries: Sequence[ReplayEntry]) -> list[str]:
    """Device ids in order of first appearance (in time)."""
    seen: dict[str, None] = {}
    for entry in sorted(entries, key=lambda e: e.at):
        seen.setdefault(entry.device, None)
    return list(seen)
