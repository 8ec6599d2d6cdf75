"""The observer protocol: something that sees OTAEvents arrive at the backend and stamps their arrival, from
the run's fence on (simulator.observers.fence)."""

from __future__ import annotations

from typing import Protocol

from simulator.observers.fence import RunFence
from simulator.records import ArrivalRecord

__all__ = ["Observer"]


class Observer(Protocol):
    name: str

    def start(self) -> None:
        """Begin observing and take the run's fence (simulator.observers.fence): call it before the run's
        first OTAEvent; `arrival_count` and `arrivals` then hold only what came after it."""
        ...

    @property
    def fence(self) -> RunFence | None:
        """The run's mark once started (None before)."""
        ...

    def arrival_count(self) -> int: ...

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]: ...

    def stop(self) -> None: ...
