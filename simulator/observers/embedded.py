"""The embedded backend's collector seen from the generator: its control HTTP endpoint.

POST /runs/mark fences the run (simulator.observers.fence): `start()` takes the mark, and `arrivals` and
`arrival_count` see only the rows from it. GET /arrivals?since=N&format=json returns the arrival log from row N (cells
as in events.arrivals.csv); GET /stats returns the collector's counters as JSON. fleetsim never parses the
collector's /metrics (Prometheus text, for humans and scrapers) back.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from simulator.errors import UsageError
from simulator.metrics.logrows import arrival_from_row
from simulator.observers.fence import RunFence
from simulator.records import ARRIVAL_LOG_HEADER, ArrivalRecord

__all__ = ["CollectorClient"]

TIMEOUT_S = 10.0


class CollectorClient:
    name = "embedded-collector"

    def __init__(self, control_url: str, label: str = "") -> None:
        if not control_url:
            raise UsageError("the embedded backend has no collector control endpoint")
        self.base = control_url.rstrip("/")
        self.label = label
        self._fence: RunFence | None = None

    def _get(self, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.base + path, data=body, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                data: bytes = resp.read()
                return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and path == "/runs/mark":
                raise UsageError(f"collector at {self.base} has no run mark (POST /runs/mark): it is an older "
                                 "fleetsim backend; restart `fleetsim backend` with this version") from None
            raise UsageError(f"collector at {self.base}: {path}: HTTP {exc.code} {exc.reason}") from None
        except OSError as exc:
            raise UsageError(f"collector at {self.base} unreachable: {exc}") from exc

    def start(self) -> None:
        """Check the collector is up and take the run's mark (its fence)."""
        self._get("/healthz")
        self._fence = self.mark()

    def mark(self) -> RunFence:
        """POST /runs/mark: where the run begins in the arrival log, and the collector's clock against ours
        (NTP-style: its `at` against the midpoint of our round trip)."""
        sent = time.time()
        doc = json.loads(self._get("/runs/mark", json.dumps({"label": self.label}).encode()))
        back = time.time()
        try:
            cursor, at = int(doc["cursor"]), float(doc["at"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"collector at {self.base}: /runs/mark answered {doc!r}") from None
        return RunFence(at=at, cursor=cursor, offset_s=at - (sent + back) / 2, uncertainty_s=(back - sent) / 2,
                        kind="collector cursor")

    def follow(self, cursor: int, offset_s: float = 0.0, uncertainty_s: float = 0.0) -> None:
        """Read from another process's mark (a worker reads from its master's: rows before it are earlier
        runs') and judge the join with the clock offset that process measured at it."""
        self._fence = RunFence(at=0.0, cursor=cursor, offset_s=offset_s, uncertainty_s=uncertainty_s,
                               kind="master's collector cursor")

    @property
    def fence(self) -> RunFence | None:
        return self._fence

    def stop(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        """The collector's counters (messages, arrivals, violations, ...), as Collector.stats()."""
        doc = json.loads(self._get("/stats"))
        if not isinstance(doc, dict):
            raise UsageError(f"collector at {self.base}: /stats is not a JSON object")
        return doc

    def _cursor(self) -> int:
        return self._fence.cursor if self._fence is not None else 0

    def arrival_count(self) -> int:
        """Arrivals since the run's mark."""
        return max(0, int(self.stats()["arrivals"]) - self._cursor())

    def raw_arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        """The collector's rows from absolute row `since` (0: the backend's whole log, every run's)."""
        doc = json.loads(self._get(f"/arrivals?since={since}&format=json"))
        if list(doc.get("columns", ())) != list(ARRIVAL_LOG_HEADER):
            raise UsageError(f"collector at {self.base}: unexpected arrival columns {doc.get('columns')!r}")
        return [arrival_from_row([str(cell) for cell in row]) for row in doc["rows"]]

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        """The run's arrivals: rows from its mark, `since` counted from the mark (the collector numbers
        occurrences from the latest mark, as the run's devices number theirs)."""
        return self.raw_arrivals(self._cursor() + since)

    def violations(self) -> dict[str, Any]:
        doc = json.loads(self._get("/violations"))
        return doc if isinstance(doc, dict) else {"violations": doc}
