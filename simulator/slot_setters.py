"""The slots' own setters of a frozen slots dataclass, for a hand-written `__init__` on a hot path.

A frozen dataclass's generated `__init__` assigns each field with `object.__setattr__(self, "name", value)`
(a call that looks the name up through the class); the slot's member descriptor `__set__` stores it directly.
For PlannedAction's 8 fields that is ~2.5 us against ~0.75 us per instance (python -m timeit under gevent's
patch, 2026-12-07, this 2-core VM), and the planner builds ~33 actions and ~26 events per rebooting operation
(issue 16, bench/plan_cost.py). The instances stay frozen: only these setters, called from `__init__`, write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

__all__ = ["slot_setters"]

Setter = Callable[[Any, Any], None]


def slot_setters(cls: type) -> tuple[Setter, ...]:
    """The `__set__` of each field's slot of `cls` (a dataclass with slots=True), in field order."""
    slots = vars(cls)
    return tuple(slots[f.name].__set__ for f in fields(cls))
