"""The observer protocol: something that sees OTAEvents arrive at the backend and stamps their arrival."""

from __future__ import annotations

from typing import Protocol

from simulator.records import ArrivalRecord

__all__ = ["Observer"]


class Observer(Protocol):
    name: str

    def start(self) -> None: ...

    def arrival_count(self) -> int: ...

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]: ...

    def stop(self) -> None: ...
