"""Every OTAEvent publish and every onboarding phase as a Locust request, plus fleetsim's own HDR recorder.

Locust's rounded statistics feed its UI only: verdicts come from the recorder.
request_type "OTAEvent", name = status, response_time = publish->ack in ms (QoS 2: PUBCOMP);
request_type "onboarding", name = phase.
"""

from __future__ import annotations

from typing import Any

from simulator.generator.fleet import FleetCallbacks
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import SendRecord
from simulator.run.recording import recorder_callbacks
from simulator.transports.base import OnboardingTimes

__all__ = ["OTAEVENT_BYTES", "make_callbacks"]

# An OTAEvent BSON document is ~153 bytes; reported as the response length.
OTAEVENT_BYTES = 153
ONBOARDING_PHASES = ("registration", "certificate", "pairing_info", "connect", "handshake")


def make_callbacks(environment: Any, recorder: MetricsRecorder) -> FleetCallbacks:
    """The recorder's callbacks (as every driver records), each also fired as a Locust request."""
    fire = environment.events.request.fire
    base = recorder_callbacks(recorder)

    def on_record(rec: SendRecord) -> None:
        base.on_record(rec)
        status = rec.key[2]
        if rec.sent is None:
            fire(request_type="OTAEvent", name=status, response_time=0, response_length=0,
                 exception=RuntimeError(rec.error or "publish failed"), context={})
        elif rec.acked is None or rec.error is not None:
            fire(request_type="OTAEvent", name=status, response_time=0, response_length=0,
                 exception=RuntimeError(rec.error or "not acked"), context={})
        else:
            fire(request_type="OTAEvent", name=status, response_time=(rec.acked - rec.sent) * 1000.0,
                 response_length=OTAEVENT_BYTES, exception=None, context={})

    def on_onboarding(device_id: str, times: OnboardingTimes) -> None:
        base.on_onboarding(device_id, times)
        for phase in ONBOARDING_PHASES:
            value = getattr(times, phase)
            if value is not None:
                fire(request_type="onboarding", name=phase, response_time=value * 1000.0, response_length=0,
                     exception=None, context={})

    return FleetCallbacks(on_record=on_record, on_onboarding=on_onboarding, on_online=base.on_online)
