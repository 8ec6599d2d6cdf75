"""Errors the user sees as one clear line (never a traceback).

`ConfigError` names the file, the line and the field; the CLI prints `file:line: field: message` and exits 2.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigErrors", "FleetsimError", "IllegalTransition", "UsageError"]


class FleetsimError(Exception):
    """Base of every error fleetsim reports to the user as one line."""

    exit_code = 1


class UsageError(FleetsimError):
    """Bad flags, bad target, unreachable service: one line, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigError:
    """One problem in a configuration file, located precisely."""

    file: str
    line: int  # 1-based; 0 when unknown (the file as a whole)
    field: str  # dotted path, e.g. "lifecycle.random.outcomes.success"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {_shown(self.field)}: {self.message}" if self.field else f"{where}: {self.message}"


def _shown(field: str) -> str:
    """The dotted field as written, or quoted when a part of it would not be visible (a key of spaces, a
    control character): `file:1: ' ': unknown key` rather than `file:1:  : unknown key`."""
    plain = all(part and part == part.strip() and part.isprintable() for part in field.split("."))
    return field if plain else repr(field)


class ConfigErrors(FleetsimError):
    """All problems found in one or more files; printed one per line, exit 2."""

    exit_code = 2

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class IllegalTransition(FleetsimError):
    """The OTA lifecycle machine was asked to do something the runtime cannot do."""

    def __init__(self, state: str, event: str) -> None:
        self.state = state
        self.event = event
        super().__init__(f"illegal OTA transition: event {event!r} in state {state!r}")
