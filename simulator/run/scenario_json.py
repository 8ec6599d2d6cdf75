"""A resolved Scenario as JSON and back, so that workers receive the scenario as data.

Workers never re-read the scenario file or the environment: the composition root resolves the scenario once
(YAML < FLEETSIM_* env < flags) and ships this encoding. The decoder follows the dataclass field types
(nested frozen dataclasses, tuples, `X | None`, Literal and plain scalars), so a field added to the model
travels without a change here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from simulator.scenario.model import Scenario

__all__ = ["scenario_from_jsonable", "scenario_to_jsonable"]


def scenario_to_jsonable(scenario: Scenario) -> dict[str, Any]:
    """Plain JSON types (tuples become lists)."""
    out = _encode(scenario)
    assert isinstance(out, dict)
    return out


def scenario_from_jsonable(doc: dict[str, Any]) -> Scenario:
    """The Scenario `scenario_to_jsonable` encoded (equal to it, field by field)."""
    out = _decode(Scenario, doc)
    assert isinstance(out, Scenario)
    return out


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _decode(inner, value)
    if origin is Literal:
        return value
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        _, vt = get_args(tp)
        return {k: _decode(vt, v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value}
        return tp(**kwargs)
    if tp is float and isinstance(value, int):
        return float(value)  # JSON writes 30.0 as 30.0, but a hand-written spec may say 30
    return value
