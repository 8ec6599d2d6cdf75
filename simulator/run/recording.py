"""How every driver records a device's sends and onboarding: straight into the run's MetricsRecorder."""

from __future__ import annotations

from simulator.generator.fleet import FleetCallbacks
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import SendRecord

__all__ = ["recorder_callbacks"]


def recorder_callbacks(recorder: MetricsRecorder) -> FleetCallbacks:
    """Records straight into `recorder` (the Locust driver's stats bridge does the same and fires Locust events)."""

    def on_record(rec: SendRecord) -> None:
        if rec.sent is None:
            recorder.on_publish_error(rec)
            return
        recorder.on_send(rec)
        recorder.on_ack(rec)

    return FleetCallbacks(on_record=on_record, on_onboarding=lambda device, times: recorder.on_onboarding(times),
                          on_online=recorder.device_online)
