"""The observer protocol: something that sees OTAEvents arrive at the backend and stamps their arrival, from
the run's fence on (simulator.observers.fence)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from simulator.observers.fence import RunFence
from simulator.records import ArrivalRecord

__all__ = ["Observer", "Releasing"]


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


@runtime_checkable
class Releasing(Protocol):
    """An observer that holds its arrivals until told that their one reader has them (the trigger observers'
    ArrivalBook): the reader calls `release` so that the process holds what is unread, not the run's log."""

    def release(self, upto: int) -> None:
        """Forget the arrivals before number `upto`; `arrivals(since)` with since < upto is then an error."""
        ...
