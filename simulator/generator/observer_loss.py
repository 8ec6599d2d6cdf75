"""`ObserverLoss`: the run's observer failed when the run's end read it (the embedded backend went away, a
trigger endpoint stopped answering), and what that leaves out of the results.

The end of a run never dies of it (issue: a soak's backend that exited before the run's end lost every
worker's joined books): the books keep the arrivals read before, the run is written partial, and this says
why, in the console's last lines and in summary.json `extra.observer_end`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["ObserverLoss"]


@dataclass(frozen=True)
class ObserverLoss:
    observer: str  # Observer.name ("embedded-collector", ...)
    error: str  # what the last read raised ("" = it answered)
    read_at: float | None  # wall s of the last read that answered (None: none did)

    def note(self) -> str:
        """One line for the console and the run's reason."""
        who = "collector" if self.observer == "embedded-collector" else f"observer {self.observer}"
        if self.read_at is None:
            unread = "no arrival read"
        else:
            when = dt.datetime.fromtimestamp(self.read_at, dt.UTC).strftime("%H:%M:%S UTC")
            unread = f"arrivals after {when} not read"
        return f"{who} unreachable at the end ({self.error}): {unread}; events acked but not read count as " \
               "acked_not_arrived"

    def to_jsonable(self) -> dict[str, object]:
        return {"observer": self.observer, "error": self.error, "arrivals_read_until": self.read_at,
                "note": self.note()}
