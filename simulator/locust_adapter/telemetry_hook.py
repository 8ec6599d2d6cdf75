"""Live telemetry (issue 17) wired onto a fleetsim Locust run: one call where the run starts (`start_telemetry`,
local or master process) and `TelemetryRun.stop()` where it ends; `install_telemetry` (called by hooks.install)
makes workers ship their ProcessReport with every Locust worker report once the master asks for it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.live import LiveDelivery
from simulator.metrics.histograms import HistogramSet
from simulator.metrics.logrows import send_from_row
from simulator.telemetry.hub import TelemetryHub, run_labels
from simulator.telemetry.options import TelemetryOptions
from simulator.telemetry.report import WIRE_KEY, ProcessProbe, ProcessReport

__all__ = ["TelemetryRun", "install_telemetry", "report_from_final", "start_telemetry"]

log = logging.getLogger("fleetsim.telemetry")

SETUP_MESSAGE = "fleetsim_telemetry"  # master -> workers: start sending ProcessReports


@dataclass
class TelemetryRun:
    hub: TelemetryHub
    ctx: FleetContext
    exporters: list[Any] = field(default_factory=list)  # PrometheusExporter, OtlpExporter
    urls: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """On a master the workers' final exports replace their last live reports before the final OTLP push."""
        if self.ctx.is_master:
            self.hub.use_finals([report_from_final(export) for _, export in sorted(self.ctx.finals.items())])
        for exporter in reversed(self.exporters):
            exporter.stop()


def start_telemetry(ctx: FleetContext, options: TelemetryOptions, delivery: LiveDelivery | None = None
                    ) -> TelemetryRun | None:
    """Start the exporters `options` ask for (None when none); `delivery` feeds delivered and e2e (call this
    before delivery.start(), so that no arrival row is missed)."""
    if not options.enabled:
        return None
    from simulator.telemetry.prometheus import PrometheusExporter, parse_listen

    scenario = ctx.require_spec().scenario
    labels = run_labels(scenario.name, scenario.transport, scenario.target)
    probe = None if ctx.is_master else ProcessProbe(recorder=lambda: ctx.recorder, fleet_counters=lambda: (
        ctx.fleet.counters() if ctx.fleet is not None else {}))
    hub = TelemetryHub(labels=labels, probe=probe)
    ctx.telemetry = hub
    run = TelemetryRun(hub=hub, ctx=ctx)
    if delivery is not None and delivery.control_url:
        delivery.listeners.append(hub.on_arrivals)
    try:
        if options.metrics_listen:
            host, port = parse_listen(options.metrics_listen)
            prom = PrometheusExporter(hub.snapshot, host=host, port=port)
            run.urls.append(prom.start())
            run.exporters.append(prom)
        if options.otlp_endpoint:
            from simulator.telemetry.otlp import OtlpExporter

            otlp = OtlpExporter(hub.snapshot, options.otlp_endpoint, interval_s=options.otlp_interval_s)
            run.urls.append(otlp.start())
            run.exporters.append(otlp)
    except Exception:
        run.stop()
        raise
    for exporter, url in zip(run.exporters, run.urls, strict=True):
        what = "Prometheus metrics on" if exporter.__class__.__name__ == "PrometheusExporter" else "OTLP push to"
        print(f"fleetsim: {what} {url}", file=sys.stderr, flush=True)
    return run


def report_from_final(export: dict[str, Any]) -> ProcessReport:
    """A worker's final recorder export (hooks._on_test_stop) as a ProcessReport."""
    totals = {str(k): int(v) for k, v in dict(export.get("totals", {})).items()}
    fleet = dict(export.get("fleet_counters", {}))
    counters = {k: totals.get(k, 0) for k in ("offered", "sent", "acked", "publish_errors", "ack_errors")}
    counters.update(connects=int(export.get("connects", 0)), session_present=int(export.get("session_present", 0)),
                    reboots=int(fleet.get("reboots", 0)), reconnect_failures=int(fleet.get("reconnect_failures", 0)))
    ota: dict[tuple[str, str], int] = {}
    for row in export.get("send_log", ()):
        rec = send_from_row(row)
        if rec.sent is not None:
            ota[(rec.key[2], rec.code)] = ota.get((rec.key[2], rec.code), 0) + 1
    for status, code, n in export.get("ota_events", ()):  # a worker that streamed its send log (issue 14)
        ota[(str(status), str(code))] = ota.get((str(status), str(code)), 0) + int(n)
    return ProcessReport(counters=counters, devices_online=int(export.get("online", 0)),
                         devices_failed=int(fleet.get("failed", 0)),
                         errors_by_reason={str(k): int(v) for k, v in dict(export.get("error_reasons", {})).items()},
                         ota_events=ota, histograms=dict(HistogramSet.from_export(export["histograms"]).paths))


# -- distributed runs: workers report to the master ----------------------------------------------------------
def install_telemetry(ctx: FleetContext) -> None:
    """Listeners for every process kind (hooks.install calls this once per environment)."""
    events = ctx.environment.events
    events.test_start.add_listener(lambda **kw: _ask_workers(ctx))
    events.report_to_master.add_listener(lambda client_id, data, **kw: _report(ctx, data))
    events.worker_report.add_listener(lambda client_id, data, **kw: _worker_report(ctx, client_id, data))
    if ctx.environment.runner is not None:
        _register(ctx)
    else:
        events.init.add_listener(lambda environment, **kw: _register(ctx))


def _register(ctx: FleetContext) -> None:
    runner = ctx.environment.runner
    if type(runner).__name__ == "WorkerRunner":
        runner.register_message(SETUP_MESSAGE, lambda msg, **kw: _enable_worker(ctx))


def _ask_workers(ctx: FleetContext) -> None:
    if ctx.is_master and isinstance(ctx.telemetry, TelemetryHub):
        ctx.environment.runner.send_message(SETUP_MESSAGE, {})


def _enable_worker(ctx: FleetContext) -> None:
    if ctx.telemetry is None:
        ctx.telemetry = ProcessProbe(recorder=lambda: ctx.recorder, fleet_counters=lambda: (
            ctx.fleet.counters() if ctx.fleet is not None else {}))


def _report(ctx: FleetContext, data: dict[str, Any]) -> None:
    probe = ctx.telemetry
    if isinstance(probe, ProcessProbe):
        data[WIRE_KEY] = probe.report().to_wire()


def _worker_report(ctx: FleetContext, client_id: str, data: dict[str, Any]) -> None:
    hub = ctx.telemetry
    wire = data.get(WIRE_KEY)
    if isinstance(hub, TelemetryHub) and isinstance(wire, dict):
        try:
            hub.worker_report(client_id, ProcessReport.from_wire(wire))
        except (KeyError, TypeError, ValueError) as exc:  # a newer/older worker: said once per report, not fatal
            log.warning("telemetry report from worker %s unreadable: %s", client_id, exc)
