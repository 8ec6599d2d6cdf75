"""The live view both exporters read: this process's probe (local run) or the workers' latest reports (master),
plus the deliveries the run process sees from the embedded collector.

`TelemetryHub.snapshot()` returns one frozen `TelemetrySnapshot`; the Prometheus collector and the OTLP pusher
render the same snapshot, so the two never disagree on a name, a label or a count.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulator.metrics import names
from simulator.metrics.histograms import LatencyHistogram
from simulator.records import ArrivalRecord
from simulator.telemetry.buckets import ClassicHistogram, to_classic
from simulator.telemetry.report import ProcessProbe, ProcessReport, merge_reports

__all__ = ["RunLabels", "TelemetryHub", "TelemetrySnapshot", "run_labels"]


@dataclass(frozen=True)
class RunLabels:
    """Labels on every series: what run this is. Nothing secret (no JWT, URL credentials or device ids)."""

    scenario: str
    run_id: str
    transport: str
    target: str

    def as_dict(self) -> dict[str, str]:
        return {"scenario": self.scenario, "run_id": self.run_id, "transport": self.transport,
                "target": self.target}


def run_labels(scenario: str, transport: str, target: str, started: float | None = None) -> RunLabels:
    """run_id = `<UTC start of the process's run, YYYYmmddTHHMMSSZ>-<scenario>` (the results folder is named the
    same way from the plan's start, so the two can differ by the onboarding time); target = `embedded` or the
    target file's name, never its contents."""
    when = datetime.fromtimestamp(time.time() if started is None else started, tz=UTC)
    target_name = target if target == "embedded" else target.replace("\\", "/").rsplit("/", 1)[-1]
    return RunLabels(scenario=scenario, run_id=f"{when.strftime('%Y%m%dT%H%M%SZ')}-{scenario}",
                     transport=transport, target=target_name)


@dataclass(frozen=True)
class TelemetrySnapshot:
    """Everything exported at one instant (counters are totals since the run's start)."""

    labels: RunLabels
    taken_at: float  # wall seconds
    process: ProcessReport  # this process, or the sum of the workers
    workers_reporting: int  # 1 on a local run
    delivered: int | None  # OTAEvents the embedded collector logged (None: no collector to ask)
    histograms: Mapping[str, ClassicHistogram]  # path -> buckets (ack, ack_corrected, send_lag, onboarding...)


@dataclass
class TelemetryHub:
    labels: RunLabels
    probe: ProcessProbe | None = None  # a local run (or a master's own process: None)
    _workers: dict[str, ProcessReport] = field(default_factory=dict)
    _delivered: int | None = None
    _e2e: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(names.PATH_E2E_DEVICE_T))

    # -- inputs ----------------------------------------------------------------------------------------------
    def use_finals(self, finals: list[ProcessReport]) -> bool:
        """Master, at the run's end: the workers' final exports replace their live reports (which trail by up to
        one report interval), but only when there is a final for every worker that reported; else the live
        reports stay (a missing worker must not vanish from the totals)."""
        if not finals or len(finals) < len(self._workers):
            return False
        self._workers = {f"final-{i}": report for i, report in enumerate(finals)}
        return True

    def worker_report(self, client_id: str, report: ProcessReport) -> None:
        """Master: the latest report of one worker replaces its previous one (reports are totals)."""
        self._workers[client_id] = report

    def on_arrivals(self, fresh: Iterable[ArrivalRecord]) -> None:
        """New rows of the collector's arrival log: delivered count and arrival - device `t` latency."""
        n = 0
        for rec in fresh:
            n += 1
            if rec.t_ms is not None:
                self._e2e.record_s(rec.arrival - rec.t_ms / 1000.0)
        self._delivered = (self._delivered or 0) + n

    # -- output ----------------------------------------------------------------------------------------------
    def snapshot(self) -> TelemetrySnapshot:
        reports = list(self._workers.values())
        if self.probe is not None:
            reports.append(self.probe.report())
        merged = merge_reports(reports)
        hists = {path: to_classic(hist.hist) for path, hist in merged.histograms.items()}
        if self._delivered is not None:
            hists[names.PATH_E2E_DEVICE_T] = to_classic(self._e2e.hist)
        return TelemetrySnapshot(labels=self.labels, taken_at=time.time(), process=merged,
                                 workers_reporting=len(reports), delivered=self._delivered, histograms=hists)
