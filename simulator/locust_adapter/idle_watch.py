"""`--until-idle S` of a backend-driven run: when no OTARequest has been in flight for S seconds."""

from __future__ import annotations

from typing import Any

__all__ = ["IdleWatch"]


class IdleWatch:
    """`--until-idle S`: true once S seconds passed with no request in flight and no new request seen, counted
    from the first OTARequest (a run started before the campaign is waiting for it, not idle)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.since = 0.0
        self.requests = -1

    def expired(self, snap: dict[str, Any], elapsed: float) -> bool:
        if self.idle_s <= 0:
            return False
        requests = int(snap.get("requests") or 0)
        if requests == 0 or int(snap.get("in_flight") or 0) > 0 or requests != self.requests:
            self.since, self.requests = elapsed, requests
        return elapsed - self.since >= self.idle_s
