"""Every exported metric once: name, kind, help, and how it is read from a TelemetrySnapshot.

The Prometheus collector and the OTLP pusher both render `families(snapshot)`, so a metric exists in both or in
neither. Names follow Prometheus conventions (base unit seconds, counters get `_total` in the exposition; OTLP
carries the base name). Every series carries the run labels (scenario, run_id, transport, target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.metrics import names
from simulator.telemetry.buckets import ClassicHistogram
from simulator.telemetry.hub import TelemetrySnapshot

__all__ = ["METRIC_NAMES", "Family", "Sample", "families"]

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Sample:
    labels: tuple[tuple[str, str], ...]  # extra labels beyond the run labels, e.g. (("reason", "never_acked"),)
    value: float | ClassicHistogram


@dataclass(frozen=True)
class Family:
    name: str  # base name: counters without `_total`
    kind: Kind
    help: str
    samples: tuple[Sample, ...]


# name -> (kind, help). A dashboard test checks its queries against a real scrape; this table is the source.
_SPECS: dict[str, tuple[Kind, str]] = {
    "fleetsim_events_offered": ("counter", "OTAEvents the plan made due (sent or failed to publish)."),
    "fleetsim_events_sent": ("counter", "OTAEvent publishes that left the device (completed: acked or not)."),
    "fleetsim_events_acked": ("counter", "OTAEvents acknowledged by the broker (QoS 2: PUBCOMP)."),
    "fleetsim_events_delivered": ("counter", "OTAEvents the embedded collector logged (embedded target only)."),
    "fleetsim_publish_errors": ("counter", "OTAEvents whose publish raised (never left the device)."),
    "fleetsim_ack_errors": ("counter", "OTAEvents sent but not acknowledged (session lost, never acked)."),
    "fleetsim_event_errors": ("counter", "Publish and ack errors by reason (the loss reasons known live)."),
    "fleetsim_ota_events": ("counter", "OTAEvents sent, by OTA status and statusCode (the live OTA funnel)."),
    "fleetsim_devices_online": ("gauge", "Virtual devices connected now."),
    "fleetsim_devices_failed": ("gauge", "Virtual devices that never came online (onboarding failed)."),
    "fleetsim_connects": ("counter", "Completed device connects (onboardings and reconnects after reboots)."),
    "fleetsim_session_present": ("counter", "Connects the broker answered with session present."),
    "fleetsim_reboots": ("counter", "Device reboots (a real disconnect and reconnect)."),
    "fleetsim_reconnect_failures": ("counter", "Failed reconnect attempts (retried with backoff)."),
    "fleetsim_workers_reporting": ("gauge", "Generator processes whose numbers are in this view."),
    "fleetsim_latency_seconds": ("histogram", "Event latency by path: ack = publish -> PUBCOMP, ack_corrected "
                                 "= intended send -> PUBCOMP, send_lag = intended -> actual send (generator), "
                                 "e2e_device_t = device t -> collector arrival."),
    "fleetsim_onboarding_seconds": ("histogram", "Device onboarding by phase (Pairing API registration, "
                                    "certificate, pairing_info; TLS+CONNACK; Astarte handshake); phase=all: "
                                    "one whole connect."),
}
METRIC_NAMES: tuple[str, ...] = tuple(_SPECS)

_LATENCY_PATHS = (names.PATH_ACK, names.PATH_ACK_CORRECTED, names.PATH_SEND_LAG, names.PATH_E2E_DEVICE_T)


def _family(name: str, samples: list[Sample]) -> Family:
    kind, text = _SPECS[name]
    return Family(name=name, kind=kind, help=text, samples=tuple(samples))


def _one(value: float) -> list[Sample]:
    return [Sample((), value)]


def families(snap: TelemetrySnapshot) -> list[Family]:
    proc = snap.process
    c = proc.counters
    out = [
        _family("fleetsim_events_offered", _one(c.get("offered", 0))),
        _family("fleetsim_events_sent", _one(c.get("sent", 0))),
        _family("fleetsim_events_acked", _one(c.get("acked", 0))),
        _family("fleetsim_publish_errors", _one(c.get("publish_errors", 0))),
        _family("fleetsim_ack_errors", _one(c.get("ack_errors", 0))),
        _family("fleetsim_event_errors", [Sample((("reason", r),), n)
                                          for r, n in sorted(proc.errors_by_reason.items())]),
        _family("fleetsim_ota_events", [Sample((("status", s), ("code", code)), n)
                                        for (s, code), n in sorted(proc.ota_events.items())]),
        _family("fleetsim_devices_online", _one(proc.devices_online)),
        _family("fleetsim_devices_failed", _one(proc.devices_failed)),
        _family("fleetsim_connects", _one(c.get("connects", 0))),
        _family("fleetsim_session_present", _one(c.get("session_present", 0))),
        _family("fleetsim_reboots", _one(c.get("reboots", 0))),
        _family("fleetsim_reconnect_failures", _one(c.get("reconnect_failures", 0))),
        _family("fleetsim_workers_reporting", _one(snap.workers_reporting)),
    ]
    if snap.delivered is not None:
        out.append(_family("fleetsim_events_delivered", _one(snap.delivered)))
    hists = snap.histograms
    out.append(_family("fleetsim_latency_seconds", [Sample((("path", p),), hists[p])
                                                    for p in _LATENCY_PATHS if p in hists]))
    phases = [Sample((("phase", "all"),), hists[names.PATH_ONBOARDING])] if names.PATH_ONBOARDING in hists else []
    phases += [Sample((("phase", ph),), hists[names.onboarding_path(ph)])
               for ph in names.ONBOARDING_PHASES if names.onboarding_path(ph) in hists]
    out.append(_family("fleetsim_onboarding_seconds", phases))
    return out
