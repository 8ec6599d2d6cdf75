"""What one generator process contributes to the live view (`ProcessReport`), and how it is read (`ProcessProbe`).

A worker sends its report to the master with every Locust worker report (every 3 s, Locust's
WORKER_REPORT_INTERVAL); the master keeps the latest per worker and adds them up (`merge_reports`). Histograms
travel HDR-encoded (run totals so far, compressed V2 format: a few hundred bytes to ~2 KB each), so the payload
is bounded by the number of latency paths, not by the run's length or event rate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.metrics.histograms import LatencyHistogram
from simulator.metrics.recorder import MetricsRecorder

__all__ = ["WIRE_KEY", "ProcessProbe", "ProcessReport", "merge_reports"]

WIRE_KEY = "fleetsim_telemetry"  # key of the report in Locust's worker report dict
WIRE_VERSION = 1

# Per-process counters, all monotonic except the two gauges (devices_online, devices_failed).
COUNTER_FIELDS = ("offered", "sent", "acked", "publish_errors", "ack_errors", "connects", "session_present",
                  "reboots", "reconnect_failures")


@dataclass(frozen=True)
class ProcessReport:
    """Totals so far of one process (or of several, merged). Histograms: path -> run-total histogram."""

    counters: Mapping[str, int]
    devices_online: int = 0
    devices_failed: int = 0
    errors_by_reason: Mapping[str, int] = field(default_factory=dict)
    ota_events: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (status, statusCode) -> sent
    histograms: Mapping[str, LatencyHistogram] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """JSON-able (Locust's msgpack): histograms HDR-encoded."""
        return {"version": WIRE_VERSION, "counters": dict(self.counters), "devices_online": self.devices_online,
                "devices_failed": self.devices_failed, "errors_by_reason": dict(self.errors_by_reason),
                "ota_events": [[status, code, n] for (status, code), n in sorted(self.ota_events.items())],
                "histograms": {path: hist.encode() for path, hist in sorted(self.histograms.items())}}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ProcessReport:
        if int(data.get("version", 0)) != WIRE_VERSION:
            raise ValueError(f"telemetry report version {data.get('version')!r}, expected {WIRE_VERSION}")
        return cls(
            counters={str(k): int(v) for k, v in dict(data["counters"]).items()},
            devices_online=int(data["devices_online"]), devices_failed=int(data["devices_failed"]),
            errors_by_reason={str(k): int(v) for k, v in dict(data["errors_by_reason"]).items()},
            ota_events={(str(s), str(c)): int(n) for s, c, n in data["ota_events"]},
            histograms={str(p): LatencyHistogram.decode(str(p), str(blob))
                        for p, blob in dict(data["histograms"]).items()})


def merge_reports(reports: list[ProcessReport]) -> ProcessReport:
    """The sum of several processes' reports (histograms added, so percentiles are of the whole fleet)."""
    counters: dict[str, int] = {}
    reasons: dict[str, int] = {}
    ota: dict[tuple[str, str], int] = {}
    hists: dict[str, LatencyHistogram] = {}
    online = failed = 0
    for report in reports:
        for key, n in report.counters.items():
            counters[key] = counters.get(key, 0) + n
        for key, n in report.errors_by_reason.items():
            reasons[key] = reasons.get(key, 0) + n
        for ota_key, n in report.ota_events.items():
            ota[ota_key] = ota.get(ota_key, 0) + n
        for path, hist in report.histograms.items():
            merged = hists.get(path)
            if merged is None:
                merged = hists[path] = LatencyHistogram(path)
            merged.add(hist)
        online += report.devices_online
        failed += report.devices_failed
    return ProcessReport(counters=counters, devices_online=online, devices_failed=failed,
                         errors_by_reason=reasons, ota_events=ota, histograms=hists)


@dataclass
class ProcessProbe:
    """Reads this process's recorder (and fleet counters) into a ProcessReport; cheap enough for every scrape.

    `fleet_counters` returns ProcessFleet.counters() (or {} before the fleet exists); OTA events by status are
    counted incrementally from the recorder's send log (a cursor, so each record is looked at once).
    """

    recorder: Callable[[], MetricsRecorder | None]
    fleet_counters: Callable[[], Mapping[str, Any]] = dict
    _cursor: int = 0
    _ota: dict[tuple[str, str], int] = field(default_factory=dict)

    def report(self) -> ProcessReport:
        recorder = self.recorder()
        if recorder is None:
            return ProcessReport(counters=dict.fromkeys(COUNTER_FIELDS, 0))
        if recorder.books is not None:  # the send log streams to disk: the books count OTA events as they leave
            with contextlib.suppress(RuntimeError):  # a scrape raced a new (status, code) key: keep the last copy
                self._ota = dict(recorder.books.ota_events)
        else:
            log = recorder.send_log
            for rec in log[self._cursor:]:
                if rec.sent is not None:
                    key = (rec.key[2], rec.code)
                    self._ota[key] = self._ota.get(key, 0) + 1
            self._cursor = len(log)
        fleet = self.fleet_counters()
        totals = recorder.totals
        counters = {name: int(totals.get(name, 0)) for name in ("offered", "sent", "acked", "publish_errors",
                                                                 "ack_errors")}
        counters.update(connects=recorder.connects, session_present=recorder.session_present,
                        reboots=int(fleet.get("reboots", 0)),
                        reconnect_failures=int(fleet.get("reconnect_failures", 0)))
        return ProcessReport(counters=counters, devices_online=recorder.online,
                             devices_failed=int(fleet.get("failed", 0)),
                             errors_by_reason=dict(recorder.error_reasons), ota_events=dict(self._ota),
                             histograms=dict(recorder.running_histograms().paths))
