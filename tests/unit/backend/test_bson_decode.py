"""bson_decode.loads is py-bson's bson.loads or nothing: for any bytes, either it declines (None: the validator
asks py-bson) or it returns exactly what py-bson returns -- same keys, order, values and value types -- and
py-bson does not raise. It takes the OTAEvent payloads devices send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.common import ota_payload
from simulator.backend.bson_decode import loads


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (True == 1 and 1.0 == 1 would hide a wrong type)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo
    if isinstance(a, float) and a != a:  # NaN
        return b != b
    return bool(a == b)


def _agrees(data: bytes) -> bool:
    fast = loads(data)
    if fast is None:
        return True  # declined: py-bson decides, as before
    return _same(fast, bson.loads(data))  # raises if py-bson would have failed where the fast path did not


_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                 timezones=st.just(UTC)),
    st.binary(max_size=8),  # py-bson's binary: the fast path declines it
)
# BSON names are UTF-8 C strings: no NUL, no lone surrogate (py-bson's encoder refuses both).
_keys = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8)
_docs = st.recursive(st.dictionaries(_keys, _scalars, max_size=5),
                     lambda inner: st.dictionaries(_keys, inner, max_size=4), max_leaves=20)


def test_the_ota_event_payload_is_taken_and_equal() -> None:
    payload = ota_payload()
    fast = loads(payload)
    assert fast is not None and _same(fast, bson.loads(payload))
    assert set(fast) == {"v", "t"} and fast["v"]["statusProgress"] == bson.loads(payload)["v"]["statusProgress"]


@settings(max_examples=300, deadline=None)
@given(_docs)
def test_any_document_py_bson_encodes(doc: dict[str, Any]) -> None:
    data = bson.dumps(doc)
    assert _agrees(data)
    if not any(isinstance(v, bytes) for v in _leaves(doc)):
        assert loads(data) is not None  # only common types: the fast path takes it


@settings(max_examples=500, deadline=None)
@given(_docs, st.data())
def test_mangled_bytes_never_disagree(doc: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(bson.dumps(doc))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        where = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[where] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) + 2))
    mangled = bytes(raw[:cut]) + (b"\x00" * max(0, cut - len(raw)))
    assert _agrees(mangled)


def test_declines_what_it_does_not_know() -> None:
    assert loads(b"") is None
    assert loads(bson.dumps({"v": 1}) + b"x") is None  # bytes after the document: py-bson ignores them
    assert loads(bson.dumps({"v": [1, 2]})) is None  # arrays: py-bson's own
    assert loads(bson.dumps({"v": b"\x01"})) is None  # binary
    assert loads(bson.dumps({"$$__CLASS_NAME__$$": "x"})) is None  # py-bson's objects


def _leaves(doc: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in doc.values():
        out.extend(_leaves(value) if isinstance(value, dict) else [value])
    return out
