"""Typed reading of composed YAML nodes, collecting every problem with its line instead of stopping.

The loader composes the YAML into nodes (yaml.compose) rather than loading it, so that every key and value
keeps its line (`node.start_mark.line`, 0-based). Each `NodeReader` method returns the value, or None after
recording a ConfigError; the caller falls back to the default and goes on, so one pass reports everything.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.errors import ConfigError
from simulator.scenario.durations import DURATION_HINT, parse_duration

__all__ = ["NodeReader", "line_of", "with_changes"]

T = TypeVar("T")

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


def line_of(node: Node) -> int:
    """1-based line where `node` starts."""
    return int(node.start_mark.line) + 1


def with_changes(obj: T, changes: Mapping[str, object]) -> T:
    """dataclasses.replace with field values read from YAML (their types are judged later by checks.py)."""
    result: T = dataclasses.replace(cast(Any, obj), **changes)
    return result


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {_INT: "an integer", _FLOAT: "a number", _BOOL: "a boolean", _NULL: "null"}.get(
        str(node.tag), "a string"
    )


class NodeReader:
    """Reads values out of nodes of one file; `errors` holds what was wrong, `lines` where each field was."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[ConfigError] = []
        self.lines: dict[str, int] = {}
        self._constructor = SafeConstructor()

    def error(self, line: int, field: str, message: str) -> None:
        self.errors.append(ConfigError(self.source, line, field, message))

    def _wrong(self, node: Node, field: str, expected: str) -> None:
        self.error(line_of(node), field, f"expected {expected}, got {_kind(node)}")

    def mapping(self, node: Node, field: str, allowed: Sequence[str]) -> dict[str, Node] | None:
        """The keys of a mapping node (unknown keys reported with a suggestion; duplicates reported).

        Records `lines[field.key]` for each key. `field` "" means the document root.
        """
        if not isinstance(node, MappingNode):
            self._wrong(node, field or "(document)", "a mapping")
            return None
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or str(key_node.tag) == _MERGE:
                merge = str(key_node.tag) == _MERGE
                what = "merge keys (<<) are not supported" if merge else "keys must be text"
                self.error(line_of(key_node), field or "(document)", what)
                continue
            key = str(key_node.value)
            dotted = f"{field}.{key}" if field else key
            if key in out:
                self.error(line_of(key_node), dotted, "duplicate key")
                continue
            if key not in allowed and not self._extension(field, key):
                close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
                self.error(line_of(key_node), dotted, f"unknown key {key!r}{hint}")
                continue
            self.lines[dotted] = line_of(key_node)
            out[key] = value_node
        return out

    @staticmethod
    def _extension(field: str, key: str) -> bool:
        """Top-level `x-...` keys are free-form extensions kept in Scenario.extra (OpenAPI-style)."""
        return field == "" and key.startswith("x-")

    def require(self, node: Node, keys: dict[str, Node], field: str, required: Sequence[str]) -> bool:
        """Report each key of `required` missing from `keys` (at the mapping's line); True when none is."""
        missing = [key for key in required if key not in keys]
        for key in missing:
            self.error(line_of(node), f"{field}.{key}" if field else key, "missing (required)")
        return not missing

    def mapping_any(self, node: Node, field: str) -> dict[str, Node] | None:
        """A mapping whose keys are free (thresholds, params, outcomes): type and duplicates checked only."""
        if not isinstance(node, MappingNode):
            self._wrong(node, field, "a mapping")
            return None
        keys = [str(k.value) for k, _ in node.value if isinstance(k, ScalarNode) and str(k.tag) != _MERGE]
        return self.mapping(node, field, keys)

    def sequence(self, node: Node, field: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self._wrong(node, field, "a list")
            return None
        for index, item in enumerate(node.value):
            self.lines[f"{field}[{index}]"] = line_of(item)
        return list(node.value)

    def _scalar(self, node: Node) -> object:
        """The Python value of a scalar as YAML 1.1 resolves it; raises yaml.YAMLError/ValueError if bad."""
        return self._constructor.construct_object(node, deep=True)

    def text(self, node: Node, field: str) -> str | None:
        """Any scalar, as written (so `version: 1.10` stays "1.10" and timestamps stay text)."""
        if not isinstance(node, ScalarNode) or str(node.tag) == _NULL:
            self._wrong(node, field, "text")
            return None
        return str(node.value)

    def integer(self, node: Node, field: str) -> int | None:
        if not isinstance(node, ScalarNode) or str(node.tag) != _INT:
            self._wrong(node, field, "an integer")
            return None
        try:
            value = self._scalar(node)
        except (yaml.YAMLError, ValueError, TypeError):
            value = None
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(line_of(node), field, f"{node.value!r} is not an integer")
            return None
        return value

    def number(self, node: Node, field: str) -> float | None:
        """A finite int or float (booleans refused)."""
        if not isinstance(node, ScalarNode) or str(node.tag) not in (_INT, _FLOAT):
            self._wrong(node, field, "a number")
            return None
        try:
            value = self._scalar(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            value = None
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.error(line_of(node), field, f"{node.value!r} is not a number")
            return None
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self.error(line_of(node), field, "must be a finite number")
            return None
        return number

    def boolean(self, node: Node, field: str) -> bool | None:
        if not isinstance(node, ScalarNode) or str(node.tag) != _BOOL:
            self._wrong(node, field, "true or false")
            return None
        try:
            value = self._scalar(node)
        except (yaml.YAMLError, ValueError, TypeError):
            value = None
        if not isinstance(value, bool):
            self.error(line_of(node), field, f"{node.value!r} is not true or false")
            return None
        return value

    def duration(self, node: Node, field: str) -> float | None:
        """Seconds: a number, or a string such as `30s`, `5m`, `250ms`, `1h` (durations.py)."""
        if not isinstance(node, ScalarNode) or str(node.tag) not in (_INT, _FLOAT, _STR):
            self.error(line_of(node), field, f"{DURATION_HINT}, got {_kind(node)}")
            return None
        raw: object = node.value
        if str(node.tag) != _STR:
            try:
                raw = self._scalar(node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError):
                raw = None
        seconds = parse_duration(raw)
        if seconds is None:
            self.error(line_of(node), field, f"{DURATION_HINT}, got {node.value!r}")
        return seconds
