"""Astarte device ids, deterministic from the seed and the device's index.

An Astarte device id is 128 bits written as unpadded base64url: 22 characters (docs/protocol.md section 1;
astarte-platform/astarte doc/pages/architecture/080-mqtt-v1-protocol.md).

Schemes:
- "random": 16 bytes from numpy `SeedSequence(seed, spawn_key=(ID_STREAM, index))`, so id i depends only on
  (seed, i), never on the fleet size or the worker count;
- "sequential": `prefix` (at most 12 bytes, UTF-8) padded with zeros, then the index as a big-endian integer
  in the last 4 bytes -- ids sort and read back (`sequential_index`) in fleet order.
"""

from __future__ import annotations

import base64
import struct

import numpy as np

__all__ = ["ID_STREAM", "decode_device_id", "device_id", "is_device_id", "request_uuid", "sequential_index",
           "stream_bytes16"]

# spawn_key namespace of the id streams (plan.py uses 0 for devices' lifecycles and 1 for arrivals).
ID_STREAM = 2
_INDEX_BYTES = 4
_MAX_PREFIX = 16 - _INDEX_BYTES


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_device_id(value: str) -> bytes:
    """The 16 bytes of a device id; ValueError when `value` is not 22 characters of base64url."""
    if len(value) != 22 or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"not an Astarte device id (22 base64url characters): {value!r}")
    raw = base64.urlsafe_b64decode(value + "==")
    if _encode(raw) != value:
        raise ValueError(f"not a canonical Astarte device id (the last character's low bits): {value!r}")
    return raw


def is_device_id(value: str) -> bool:
    try:
        decode_device_id(value)
    except ValueError:
        return False
    return True


def device_id(seed: int, index: int, scheme: str = "random", prefix: str = "") -> str:
    """The id of device `index` (0-based) in a fleet seeded with `seed`."""
    if index < 0:
        raise ValueError(f"device index must be >= 0, got {index}")
    if scheme == "random":
        words = np.random.SeedSequence(seed, spawn_key=(ID_STREAM, index)).generate_state(4, np.uint32)
        return _encode(words.astype(">u4").tobytes())
    if scheme == "sequential":
        head = prefix.encode("utf-8")
        if len(head) > _MAX_PREFIX:
            raise ValueError(f"id prefix {prefix!r} is {len(head)} bytes; at most {_MAX_PREFIX} fit")
        if index >= 1 << (8 * _INDEX_BYTES):
            raise ValueError(f"device index {index} does not fit in {_INDEX_BYTES} bytes")
        raw = head.ljust(_MAX_PREFIX, b"\0") + index.to_bytes(_INDEX_BYTES, "big")
        return _encode(raw)
    raise ValueError(f"unknown id scheme {scheme!r}; expected 'random' or 'sequential'")


def sequential_index(value: str) -> int:
    """The index encoded in a sequential id."""
    return int.from_bytes(decode_device_id(value)[_MAX_PREFIX:], "big")


def stream_bytes16(rng: np.random.Generator) -> bytes:
    """`rng.bytes(16)`, the same bytes and the same stream after, at ~4 us instead of ~20 (python -m timeit under
    gevent's patch, 2026-12-07, issue 16: two per planned operation).

    Generator.bytes(16) is `integers(0, 2**32, size=4, dtype=uint32)` as little-endian bytes, and a full-range
    uint32 is one `next_uint32` of the bit generator (PCG64 hands out the two halves of a 64-bit output, keeping
    the second one buffered); the bit generator's ctypes interface calls that same function, without the size
    handling (np.prod) and the Generator's lock (a Python-level RLock under gevent's patch). Without the lock:
    a device's stream is drawn from one greenlet only. tests/unit/lifecycle/test_draws_batch.py compares both,
    a half-output buffered or not."""
    iface = rng.bit_generator.ctypes
    nxt, state = iface.next_uint32, iface.state
    return _FOUR_LE_UINT32.pack(nxt(state), nxt(state), nxt(state), nxt(state))


_FOUR_LE_UINT32 = struct.Struct("<4I")


def request_uuid(rng: np.random.Generator) -> str:
    """A uuid4-shaped request id (version 4 and RFC 4122 variant bits set) from 16 bytes of `rng`
    (the device's own stream, so request ids are deterministic too)."""
    raw = bytearray(stream_bytes16(rng))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
