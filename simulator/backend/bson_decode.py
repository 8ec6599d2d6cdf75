"""py-bson's `bson.loads` for the well-formed documents devices send, without its per-element overhead.

Why: the collector decodes every OTAEvent's payload ({"v": {requestUUID, status, statusProgress, statusCode,
message}, "t": UTC datetime}, 153 B) and py-bson 0.5.10 (what astarte-device-sdk encodes with) is pure Python
that builds six struct.Struct objects per (sub)document and slices for every field. Per OTAEvent payload
(bench.common.ota_payload()): py-bson 10.2 us, this 6.3 us of CPU (medians of 5 interleaved rounds of 20,000
decodes each, time.process_time, this 2-core VM, base 4284c78; py-bson rounds 10.14 10.81 10.39 9.73
10.16, this 6.34 7.76 6.90 5.99 6.09), of a handler of ~27-44 us (Collector.handle_message in a loop).

Exactly py-bson's result or nothing: `loads` returns the same dict py-bson returns (same keys in the same
order, same value types: int, float, bool, str, None, dict, the same tz-aware datetime) when the document is
strictly well formed and uses only the common element types; for anything else -- another element type, a
length that does not add up, bytes after the document, invalid UTF-8, py-bson's "$$__CLASS_NAME__$$" objects,
an out-of-range datetime -- it returns None and the caller asks py-bson, which then decides (and raises its
own errors, which the validator reports). py-bson is lenient with malformed input; the fast path never is.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from bson.codec import utc as _BSON_UTC  # the tzinfo py-bson gives every datetime it decodes

__all__ = ["loads"]

_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_CLASS_KEY = "$$__CLASS_NAME__$$"  # py-bson turns such a document into an object (bson.codec.decode_object)


class _Unsupported(Exception):
    """Not for the fast path: the caller falls back to py-bson."""


def loads(data: bytes) -> dict[str, Any] | None:
    """py-bson's `bson.loads(data)` when `data` is one strictly well-formed document of common element types;
    None otherwise (see the module docstring)."""
    try:
        end, doc = _document(data, 0)
    except (_Unsupported, IndexError, ValueError, OverflowError, OSError, struct.error):
        return None
    return doc if end == len(data) else None


def _document(data: bytes, base: int) -> tuple[int, dict[str, Any]]:
    """(the offset after the document at `base`, its dict); _Unsupported unless strictly well formed."""
    length = _I32.unpack_from(data, base)[0]
    end = base + length
    if length < 5 or end > len(data) or data[end - 1] != 0:
        raise _Unsupported
    last = end - 1  # the document's terminating NUL
    pos = base + 4
    out: dict[str, Any] = {}
    while pos < last:
        kind = data[pos]
        name_end = data.index(0, pos + 1)
        if name_end >= last:
            raise _Unsupported
        name = data[pos + 1:name_end].decode("utf-8")  # UnicodeDecodeError is a ValueError: py-bson keeps bytes
        pos = name_end + 1
        value: Any
        if kind == 0x02:  # string: int32 length (with its NUL), bytes, NUL
            size = _I32.unpack_from(data, pos)[0]
            stop = pos + 4 + size
            if size < 1 or stop > last or data[stop - 1] != 0:
                raise _Unsupported
            value = data[pos + 4:stop - 1].decode("utf-8")
            pos = stop
        elif kind == 0x10:  # int32
            value = _I32.unpack_from(data, pos)[0]
            pos += 4
        elif kind == 0x03:  # embedded document
            pos, value = _document(data, pos)
            if pos > last:
                raise _Unsupported
        elif kind == 0x09:  # UTC datetime, ms since the epoch: py-bson's own conversion
            value = datetime.fromtimestamp(_I64.unpack_from(data, pos)[0] / 1000.0, _BSON_UTC)
            pos += 8
        elif kind == 0x12:  # int64
            value = _I64.unpack_from(data, pos)[0]
            pos += 8
        elif kind == 0x01:  # double
            value = _F64.unpack_from(data, pos)[0]
            pos += 8
        elif kind == 0x08:  # boolean: py-bson's bool() of a signed byte
            value = data[pos] != 0
            pos += 1
        elif kind == 0x0A:  # null
            value = None
        else:  # arrays, binary (UUIDs), object ids, ...: py-bson's own decoding
            raise _Unsupported
        if pos > last:
            raise _Unsupported
        out[name] = value
    if pos != last or _CLASS_KEY in out:
        raise _Unsupported
    return end, out
