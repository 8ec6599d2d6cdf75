"""A small synthetic run (virtual clock, no I/O) shared by the outputs tests."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.clock import VirtualClock
from simulator.metrics.accounting import Accounting, account
from simulator.metrics.funnel import Funnel, funnel_from_sends
from simulator.metrics.health import GeneratorHealth
from simulator.metrics.recorder import MetricsRecorder
from simulator.records import ArrivalRecord, SendRecord
from simulator.transports.base import OnboardingTimes

STEPS = (
    ("Acknowledged", 0, ""),
    ("Downloading", 0, ""),
    ("Downloading", 100, ""),
    ("Deploying", 0, ""),
    ("Deployed", 0, ""),
    ("Rebooting", 0, ""),
    ("Success", 0, ""),
)
FAIL_STEPS = (
    ("Acknowledged", 0, ""),
    ("Downloading", 0, ""),
    ("Error", 0, "NetworkError"),
    ("Failure", 0, "InvalidBaseImage"),
)


@dataclass
class FakeRun:
    clock: VirtualClock
    recorder: MetricsRecorder
    health: GeneratorHealth
    arrivals: list[ArrivalRecord]
    accounting: Accounting
    funnel: Funnel
    end: float


def make_run(devices: int = 6, lose_last: bool = True) -> FakeRun:
    """Each device runs one OTA, a step every 0.5 s; device 1 fails; the last device's last event is lost."""
    clock = VirtualClock()
    start = clock.wall()
    recorder = MetricsRecorder(clock, start=start)
    health = GeneratorHealth(clock)
    arrivals: list[ArrivalRecord] = []
    recorder.device_online(devices)
    for d in range(devices):
        recorder.on_onboarding(
            OnboardingTimes(
                registration=0.02,
                certificate=0.01,
                pairing_info=0.005,
                connect=0.03 + d / 1000,
                handshake=0.004,
            )
        )
    events: list[tuple[float, SendRecord]] = []
    for d in range(devices):
        steps = FAIL_STEPS if d == 1 else STEPS
        for n, (status, progress, code) in enumerate(steps):
            intended = start + 0.1 * d + 0.5 * n
            sent = intended + 0.001 * (1 + d % 3)
            rec = SendRecord(
                key=(f"dev{d}", f"op{d}", status, progress, 0),
                intended=intended,
                sent=sent,
                t_ms=int(sent * 1000),
                code=code,
            )
            events.append((sent, rec))
    events.sort(key=lambda e: e[0])
    last_key = events[-1][1].key
    for sent, rec in events:
        clock.set(sent - start)
        recorder.on_send(rec)
        rec.acked = sent + 0.004
        recorder.on_ack(rec)
        if not (lose_last and rec.key == last_key):
            arrival = ArrivalRecord(key=rec.key, arrival=sent + 0.006, t_ms=rec.t_ms, code=rec.code)
            arrivals.append(arrival)
            recorder.on_arrival(arrival)
        health.record_loop_lag(0.0005)
        health.record_cpu(0.2 * (sent - start))
    end = start + 4.0
    clock.set(4.0)
    return FakeRun(
        clock,
        recorder,
        health,
        arrivals,
        account(recorder.send_log, arrivals, end, grace=1.0, start=recorder.start),
        funnel_from_sends(recorder.send_log),
        end,
    )
