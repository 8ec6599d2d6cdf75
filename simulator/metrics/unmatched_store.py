"""The online join's unmatched events (presumed lost, still joinable), compact and bounded in memory (issue 14).

An event the observer has not seen `grace_s` after its ack (or `ack_timeout_s` after its send, or that never
left) waits here until its arrival or the run's end. Only what the join still needs is kept per event, an
`Unmatched` (its send order, send and intended times, whether it was acked: the loss reason and the e2e of a
late match), not the whole SendRecord. Beyond `limit` entries in memory, the oldest move to an SQLite file in the
books' spool dir, keyed like the memory table: a later arrival, a late ack, a duplicate send or the end of the
run find them there exactly as in memory, so a join that spills has the same outcomes as one that does not
(tests/unit/metrics/test_join_spill.py), and the process stays O(limit) however far the observer falls behind.
Why a keyed file rather than an append-only list: an arrival for a spilled key must be recognised as such
(neither a duplicate of its (device, uuid, status, progress) base nor a stranger), which needs a lookup by key;
SQLite's B-tree gives that with a bounded page cache (`CACHE_KIB`), from the standard library.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from simulator.events import EventKey
from simulator.metrics import names

__all__ = ["SPILL_FILE", "Unmatched", "UnmatchedStore", "unmatched_reason"]

SPILL_FILE = "join.unmatched.sqlite"
log = logging.getLogger(__name__)
# SQLite page cache of the spill, KiB: the lookups (a late arrival, a duplicate send) touch a few B-tree pages
# each; 8 MiB keeps the upper levels of a few-million-row index cached and is the spill's whole memory cost.
CACHE_KIB = 8192
# Rows written per executemany when spilling: the rows of one chunk (~250 B each as Python tuples) are the
# spill's transient memory, 2.5 MB at most (a burst of evictions larger than a chunk is written in several).
SPILL_CHUNK = 10_000
FILTER_BITS = 1 << 25  # the spilled keys' Bloom filter: 4 MiB (_KeyFilter)

_COLUMNS = "seq, device, uuid, status, progress, occurrence, sent, intended, acked"
_BY_KEY = "device = ? AND uuid = ? AND status = ? AND progress = ? AND occurrence = ?"


class Unmatched(NamedTuple):
    """An unmatched event as the join reads it (kept packed in memory: _PACKED)."""

    seq: int  # the join's send sequence: the order lost events are listed in, and reordering's tie-break
    sent: float | None  # wall s publish was called; None: it never left (publish raised)
    intended: float  # wall s the plan wanted it sent
    acked: bool  # the broker acked it (the loss reason: acked_not_arrived, else never_acked)

    @property
    def when(self) -> float:
        """The device's send order (and fault attribution's time): sent, else intended."""
        return self.sent if self.sent is not None else self.intended


def unmatched_reason(entry: Unmatched) -> str:
    """online_join.lost_reason of the record `entry` was made from (same contract)."""
    if entry.sent is None:
        return names.LOST_PUBLISH_FAILED
    return names.LOST_ACKED_NOT_ARRIVED if entry.acked else names.LOST_NEVER_ACKED


# An entry in memory: (seq, sent or NaN, intended, acked) packed in one bytes object, 58 bytes (sys.getsizeof,
# CPython 3.11; 64 allocated), where an Unmatched tuple, its int and its two floats take 72 + 28 + 2 x 24 = 148
# (160 allocated, tracemalloc).
_PACKED = struct.Struct("<qddB")


def _pack(entry: Unmatched) -> bytes:
    return _PACKED.pack(entry.seq, math.nan if entry.sent is None else entry.sent, entry.intended, entry.acked)


def _unpack(blob: bytes) -> Unmatched:
    seq, sent, intended, acked = _PACKED.unpack(blob)
    return Unmatched(seq, None if math.isnan(sent) else sent, intended, bool(acked))


class UnmatchedStore:
    """Key -> Unmatched: up to `limit` in memory, the oldest beyond it in `path` (created when needed). `path`
    None: never spills (a join of whole logs, already in memory: accounting.account)."""

    def __init__(self, limit: int, path: Path | None = None) -> None:
        self.limit = limit
        self.path = path
        # Insertion (eviction) order: the oldest first. A plain dict: an OrderedDict's links cost ~50 B more.
        self._memory: dict[EventKey, bytes] = {}
        self._db: sqlite3.Connection | None = None
        self._filter = _KeyFilter()
        self.spilled = 0  # entries in the file now
        self.spilled_total = 0  # entries ever moved to the file
        self.path_failed: Path | None = None  # the file that could not take a batch (spilling stopped)

    def __len__(self) -> int:
        return len(self._memory) + self.spilled

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    def __contains__(self, key: EventKey) -> bool:
        if key in self._memory:
            return True
        return self._maybe_spilled(key) and self._find(key) is not None

    def add(self, key: EventKey, seq: int, sent: float | None, intended: float, acked: bool) -> None:
        """A new entry (the fields of Unmatched, packed as they come: no tuple made on the eviction path)."""
        self._memory[key] = _PACKED.pack(seq, math.nan if sent is None else sent, intended, acked)

    def pop(self, key: EventKey) -> Unmatched | None:
        blob = self._memory.pop(key, None)
        if blob is not None:
            return _unpack(blob)
        if not self._maybe_spilled(key):
            return None
        entry = self._find(key)
        if entry is not None:
            assert self._db is not None
            self._db.execute("DELETE FROM unmatched WHERE seq = ?", (entry.seq,))
            self.spilled -= 1
        return entry

    def mark_acked(self, key: EventKey) -> None:
        """An ack that came after the event was evicted (later than ack_timeout_s): its loss reason changes."""
        blob = self._memory.get(key)
        if blob is not None:
            self._memory[key] = _pack(_unpack(blob)._replace(acked=True))
        elif self._maybe_spilled(key) and self._db is not None:
            self._db.execute(f"UPDATE unmatched SET acked = 1 WHERE {_BY_KEY}", key)

    def spill(self) -> int:
        """Move the oldest beyond `limit` to the file; returns how many moved. Called each tick, so a batch is one
        second of evictions (~2,000 rows, ~10 ms at 2,000 events/s: bench/join_memory.py), not a stall of the
        generator's loop; a plain dict's scan from its start over the slots deleted since its last resize costs
        ~10 ns each. The entries leave memory once the file has them: if it cannot take them (disk full...), they
        stay, the spill stops for the run and the failure is logged (memory grows again, nothing is lost)."""
        memory = self._memory
        over = len(memory) - self.limit
        if over <= 0 or self.path is None:
            return 0
        keys = list(itertools.islice(memory, over))
        try:
            db = self._open()
            db.execute("BEGIN")  # one transaction per batch (autocommit would make each row its own)
            for done in range(0, over, SPILL_CHUNK):
                rows = []
                for key in keys[done:done + SPILL_CHUNK]:
                    e = _unpack(memory[key])
                    rows.append((e.seq, *key, e.sent, e.intended, int(e.acked)))
                db.executemany(f"INSERT INTO unmatched ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            log.error("unmatched events stay in memory from now on: spilling them to %s failed: %s", self.path, exc)
            if self._db is not None and self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            self.path_failed, self.path = self.path, None
            return 0
        for key in keys:
            del memory[key]
            self._filter.add(key)
        self.spilled += over
        self.spilled_total += over
        return over

    def drain(self, more: Iterable[tuple[EventKey, Unmatched]] = ()) -> Iterator[tuple[EventKey, Unmatched]]:
        """Every entry and `more` (the join's events still in flight), in send order (seq), all forgotten: the
        end of the run. Memory's are sorted here (at most `limit`), the file's stream from its seq order."""
        here = sorted([*((key, _unpack(blob)) for key, blob in self._memory.items()), *more],
                      key=lambda item: item[1].seq)
        self._memory = {}
        if self._db is None:
            yield from here
            return
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM unmatched ORDER BY seq")
        # The finish lists every lost key: one string object per device, uuid and status read back, not one per
        # row (~215 B a row with a 22-char device id and a 36-char uuid): a key read back costs its tuple only.
        strings: dict[str, str] = {}
        spilled = ((_key(row, strings), _entry(row)) for row in rows)
        yield from heapq.merge(here, spilled, key=lambda item: item[1].seq)
        self.spilled = 0
        self.close()

    def close(self) -> None:
        """Drop the file (it holds nothing the results need once drained, and the spool dir is removed anyway)."""
        if self._db is not None:
            self._db.close()
            self._db = None
            path = self.path or self.path_failed
            if path is not None:
                path.unlink(missing_ok=True)

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The join has one caller at a time (OnlineJoin), but the run's end may come from another thread than
            # the generator's loop that spilled (finish_run): allowed, never concurrent.
            db = sqlite3.connect(os.fspath(self.path), isolation_level=None, check_same_thread=False)
            # A scratch file, dropped at the end: no journal, no fsync (a crash loses the run's books anyway).
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.execute("CREATE TABLE IF NOT EXISTS unmatched (seq INTEGER PRIMARY KEY, device TEXT NOT NULL, "
                       "uuid TEXT NOT NULL, status TEXT NOT NULL, progress INTEGER NOT NULL, "
                       "occurrence INTEGER NOT NULL, sent REAL, intended REAL NOT NULL, acked INTEGER NOT NULL)")
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS by_key ON unmatched "
                       "(device, uuid, status, progress, occurrence)")
            self._db = db
        return self._db

    def _maybe_spilled(self, key: EventKey) -> bool:
        return self.spilled > 0 and key in self._filter

    def _find(self, key: EventKey) -> Unmatched | None:
        if self._db is None:
            return None
        row = self._db.execute(f"SELECT {_COLUMNS} FROM unmatched WHERE {_BY_KEY}", key).fetchone()
        return None if row is None else _entry(row)


class _KeyFilter:
    """A Bloom filter of the keys ever spilled: a key it has not seen is not in the file, so a new send's duplicate
    check (every send, while anything is spilled) skips the file: ~11 us a lookup there (bench run: a miss among
    300,000 rows, niced), 2 % of a core at 2,000 sends/s, against a hash and three bit tests here. False positives
    only cost a lookup; bits are never cleared (a key matched later still tests positive, and is looked up).
    FILTER_BITS bits (allocated at the first spill), three probes from the key's 64-bit hash: 2 M keys spilled
    give ~0.4 % false positives."""

    def __init__(self) -> None:
        self._bits: bytearray | None = None

    @staticmethod
    def _probes(key: EventKey) -> tuple[int, int, int]:
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        mask = FILTER_BITS - 1
        return h & mask, (h >> 25) & mask, ((h >> 50) ^ (h * 0x9E37_79B9)) & mask

    def add(self, key: EventKey) -> None:
        if self._bits is None:
            self._bits = bytearray(FILTER_BITS // 8)
        bits = self._bits
        for p in self._probes(key):
            bits[p >> 3] |= 1 << (p & 7)

    def __contains__(self, key: EventKey) -> bool:
        bits = self._bits
        return bits is not None and all(bits[p >> 3] & (1 << (p & 7)) for p in self._probes(key))


def _key(row: tuple[Any, ...], strings: dict[str, str]) -> EventKey:  # a row of _COLUMNS (sqlite3: untyped)
    device, uuid, status = (strings.setdefault(v, v) for v in (str(row[1]), str(row[2]), str(row[3])))
    return (device, uuid, status, int(row[4]), int(row[5]))


def _entry(row: tuple[Any, ...]) -> Unmatched:
    sent = row[6]
    return Unmatched(seq=int(row[0]), sent=None if sent is None else float(sent), intended=float(row[7]),
                     acked=bool(row[8]))
