"""The bundled Edgehog interface definitions, parsed once into the SDK's own `Interface` model.

Using astarte-device-sdk 0.14.0's `astarte.device.interface.Interface` (and its `Mapping`) means the embedded
backend validates payloads with exactly the rules a device built on the SDK validates with before sending
(docs/protocol.md section 6). The JSON files in this directory come from edgehog-astarte-interfaces (Apache-2.0,
see LICENSE here).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from astarte.device.interface import Interface

from simulator.errors import ConfigError, ConfigErrors

__all__ = ["INTERFACES_DIR", "interface_json", "load_interfaces"]

INTERFACES_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=16)
def _read_dir(directory: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every `*.json` under `directory` as (file, definition), keyed by interface_name; one ConfigError per
    bad file."""
    errors: list[ConfigError] = []
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    if not directory.is_dir():
        raise ConfigErrors([ConfigError(str(directory), 0, "", "interfaces directory does not exist")])
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            errors.append(ConfigError(str(path), exc.lineno, "", f"invalid JSON: {exc.msg}"))
            continue
        name = data.get("interface_name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            errors.append(ConfigError(str(path), 0, "interface_name", "missing or not a string"))
            continue
        found[name] = (path, data)
    if errors:
        raise ConfigErrors(errors)
    return found


@lru_cache(maxsize=16)
def _parse_dir(directory: Path) -> dict[str, Interface]:
    errors: list[ConfigError] = []
    parsed: dict[str, Interface] = {}
    for name, (path, data) in _read_dir(directory).items():
        try:
            parsed[name] = Interface(data)
        except Exception as exc:  # the SDK raises InterfaceFileDecodeError (or ValueError) on bad input
            errors.append(ConfigError(str(path), 0, "", f"invalid interface: {exc}"))
    if errors:
        raise ConfigErrors(errors)
    return parsed


def load_interfaces(directory: Path | None = None) -> dict[str, Interface]:
    """Interfaces by name, parsed by the SDK. Cached per directory; callers must not mutate the result."""
    return _parse_dir((directory or INTERFACES_DIR).resolve())


def interface_json(name: str, directory: Path | None = None) -> dict[str, Any]:
    """The raw JSON definition of one interface (a fresh copy: safe to mutate). KeyError if unknown."""
    _, data = _read_dir((directory or INTERFACES_DIR).resolve())[name]
    copied: dict[str, Any] = json.loads(json.dumps(data))
    return copied
