"""The embedded backend's collector seen from the generator: its control HTTP endpoint (loopback).

GET /arrivals?since=N returns the arrival log from row N as CSV (simulator.records.ARRIVAL_LOG_HEADER);
GET /metrics carries fleetsim_collector_arrivals_total for the live "delivered" rate.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from typing import Any

from simulator.errors import UsageError
from simulator.metrics.logrows import arrival_from_row
from simulator.records import ArrivalRecord

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

    def arrival_count(self) -> int:
        for line in self._get("/metrics").decode().splitlines():
            if line.startswith("fleetsim_collector_arrivals_total "):
                return int(float(line.split()[1]))
        return 0

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        reader = csv.reader(io.StringIO(self._get(f"/arrivals?since={since}").decode()))
        next(reader, None)  # header
        return [arrival_from_row(row) for row in reader if row]

    def violations(self) -> dict[str, Any]:
        doc = json.loads(self._get("/violations"))
        return doc if isinstance(doc, dict) else {"violations": doc}
