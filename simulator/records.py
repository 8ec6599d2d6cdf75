"""What the generator and the observers write down, and the on-disk format of both logs.

The send log (generator) and the arrival log (collector or a real-Astarte observer) are joined after the run
on `EventKey` (simulator.events) => delivered / lost / duplicated / reordered (docs/design.md principle 7).
All times are wall-clock seconds since the epoch (float); generator and observer share one host clock unless
the summary says otherwise (clock offset estimate, issue 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.events import EventKey

__all__ = ["ARRIVAL_LOG_HEADER", "SEND_LOG_HEADER", "ArrivalRecord", "OnboardingTimes", "SendRecord"]


@dataclass(slots=True)
class SendRecord:
    """One OTAEvent publish attempt by a virtual device."""

    key: EventKey
    intended: float  # when the plan wanted it sent (run start + planned offset)
    sent: float | None  # when publish() was called; None if it never left (see error)
    t_ms: int | None  # the `t` field written in the payload (device clock, ms)
    acked: float | None = None  # PUBCOMP/PUBACK (or socket write for QoS 0) time
    error: str | None = None  # "disconnected", "validation", "never_acked", ...
    code: str = ""  # the event's statusCode (OTA funnel by_code); additive, written as a trailing CSV column


@dataclass(slots=True)
class ArrivalRecord:
    """One OTAEvent seen by the observer (the embedded collector, an AMQP trigger, a webhook)."""

    key: EventKey
    arrival: float  # when the observer received it
    t_ms: int | None  # the device's `t` as received (None when absent: a protocol violation on OTAEvent)
    qos: int = 2
    code: str = ""  # statusCode as received (OTA funnel by_code); additive, written as a trailing CSV column


# CSV headers of events.sent.csv and events.arrivals.csv (one row per record, same column order as fields).
SEND_LOG_HEADER = ("device_id", "request_uuid", "status", "progress", "occurrence",
                   "intended", "sent", "t_ms", "acked", "error", "code")
ARRIVAL_LOG_HEADER = ("device_id", "request_uuid", "status", "progress", "occurrence", "arrival", "t_ms", "qos",
                      "code")


@dataclass
class OnboardingTimes:
    """Seconds spent in each onboarding phase of one connect (None = phase skipped, e.g. cached secret)."""

    registration: float | None = None
    certificate: float | None = None  # CSR -> signed certificate
    pairing_info: float | None = None  # GET /devices/<id> for broker_url
    connect: float | None = None  # TCP + TLS + CONNECT/CONNACK
    handshake: float | None = None  # subscriptions, introspection, emptyCache, properties
    session_present: bool = False
    extra: dict[str, float] = field(default_factory=dict)
