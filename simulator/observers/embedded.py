"""The embedded backend's collector seen from the generator: its control HTTP endpoint (loopback).

GET /arrivals?since=N&format=json returns the arrival log from row N (cells as in events.arrivals.csv);
GET /stats returns the collector's counters as JSON. fleetsim never parses the collector's /metrics (Prometheus
text, for humans and scrapers) back.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from simulator.errors import UsageError
from simulator.metrics.logrows import arrival_from_row
from simulator.records import ARRIVAL_LOG_HEADER, ArrivalRecord

__all__ = ["CollectorClient"]

TIMEOUT_S = 10.0


class CollectorClient:
    name = "embedded-collector"

    def __init__(self, control_url: str) -> None:
        if not control_url:
            raise UsageError("the embedded backend has no collector control endpoint")
        self.base = control_url.rstrip("/")

    def _get(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(self.base + path, timeout=TIMEOUT_S) as resp:
                body: bytes = resp.read()
                return body
        except OSError as exc:
            raise UsageError(f"collector at {self.base} unreachable: {exc}") from exc

    def start(self) -> None:
        self._get("/healthz")

    def stop(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        """The collector's counters (messages, arrivals, violations, ...), as Collector.stats()."""
        doc = json.loads(self._get("/stats"))
        if not isinstance(doc, dict):
            raise UsageError(f"collector at {self.base}: /stats is not a JSON object")
        return doc

    def arrival_count(self) -> int:
        return int(self.stats()["arrivals"])

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        doc = json.loads(self._get(f"/arrivals?since={since}&format=json"))
        if list(doc.get("columns", ())) != list(ARRIVAL_LOG_HEADER):
            raise UsageError(f"collector at {self.base}: unexpected arrival columns {doc.get('columns')!r}")
        return [arrival_from_row([str(cell) for cell in row]) for row in doc["rows"]]

    def violations(self) -> dict[str, Any]:
        doc = json.loads(self._get("/violations"))
        return doc if isinstance(doc, dict) else {"violations": doc}
