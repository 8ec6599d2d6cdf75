"""Frozen dataclass trees <-> JSON, driven by the dataclasses' own fields (used by summary.json).

A field's JSON key is its name. Two field options, in `field(metadata=...)`:
  FLATTEN     the field's own keys sit in the parent object (a dataclass: its fields; a mapping: every key
              of the parent no other field claims), e.g. latency_ms.onboarding = {p50.., registration: {..}}.
  OMIT_EMPTY  left out of the JSON when empty/None (keeps optional keys absent as before).
Reading is lenient on absence (a missing key takes the field's default: older summaries still read) and
strict on type: a wrong type is one UsageError naming the file and the dotted field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import TypeVar, Union, get_args, get_origin, get_type_hints

from simulator.errors import UsageError

__all__ = ["FLATTEN", "OMIT_EMPTY", "JsonValue", "from_json", "to_json"]

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
FLATTEN = "flatten"
OMIT_EMPTY = "omit_empty"
T = TypeVar("T")


def to_json(value: object) -> JsonValue:
    """The JSON value of a dataclass tree (mappings -> objects, tuples -> arrays)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, JsonValue] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get(OMIT_EMPTY) and (item is None or item == {} or item == ()):
                continue
            encoded = to_json(item)
            if f.metadata.get(FLATTEN) and isinstance(encoded, dict):
                out.update(encoded)
            else:
                out[f.name] = encoded
        return out
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"not JSON-encodable: {type(value).__name__}")


@cache
def _hints(cls: type) -> dict[str, object]:
    return get_type_hints(cls)


def _claimed(cls: type) -> frozenset[str]:
    """Keys a dataclass reads from its own JSON object (flattened dataclasses included, mappings not)."""
    keys: set[str] = set()
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.metadata.get(FLATTEN):
            if isinstance(hint, type) and dataclasses.is_dataclass(hint):
                keys |= _claimed(hint)
        else:
            keys.add(f.name)
    return frozenset(keys)


class _Bad(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.message = message


def _is_json_value(hint: object) -> bool:
    """The JsonValue alias (its resolved form: a union with str, list and dict members)."""
    if hint is object or hint == JsonValue:
        return True
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else ()
    return str in args and {get_origin(a) for a in args} >= {list, dict}


def _decode(hint: object, value: object, where: str) -> object:
    if _is_json_value(hint):
        return value  # free-form JSON (notes, details): kept as read
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors: list[_Bad] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, value, where)
            except _Bad as exc:
                errors.append(exc)
        if len(errors) == 1:  # X | None: say what X wanted
            raise _Bad(where, errors[0].message + (" (or null)" if type(None) in options else ""))
        raise _Bad(where, f"unexpected value {value!r}")
    if origin in (Mapping, dict) or hint is dict:
        if not isinstance(value, dict):
            raise _Bad(where, f"expected an object, got {value!r}")
        args = get_args(hint)
        item = args[1] if len(args) == 2 else object
        return {str(k): _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise _Bad(where, f"expected an array, got {value!r}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise _Bad(where, f"expected {len(args)} items, got {len(value)}")
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is typing.Literal:
        if value not in get_args(hint):
            raise _Bad(where, f"expected one of {get_args(hint)}, got {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Bad(where, f"expected an object, got {value!r}")
        return _decode_dataclass(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Bad(where, f"expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(where, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(where, f"expected a number, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise _Bad(where, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"json_tree: unsupported field type {hint!r} at {where}")


def _decode_dataclass(cls: type, data: dict[str, object], where: str) -> object:
    hints = _hints(cls)
    claimed = _claimed(cls)
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.metadata.get(FLATTEN):
            if isinstance(hint, type) and dataclasses.is_dataclass(hint):
                kwargs[f.name] = _decode_dataclass(hint, data, where)
            else:  # a mapping of every key nobody else claims
                rest = {k: v for k, v in data.items() if k not in claimed}
                kwargs[f.name] = _decode(hint, rest, where)
        elif f.name in data:
            kwargs[f.name] = _decode(hint, data[f.name], f"{where}.{f.name}" if where else f.name)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs and f.init
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _Bad(where or ", ".join(missing), "missing (required)")
    return cls(**kwargs)


def from_json(cls: type[T], data: object, source: str) -> T:
    """`cls` read from parsed JSON; a wrong type is one UsageError `source: field: message`."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a JSON object")
    try:
        out = _decode_dataclass(cls, data, "")
    except _Bad as exc:
        raise UsageError(f"{source}: {exc}".replace(": .", ": ")) from None
    assert isinstance(out, cls)
    return out
