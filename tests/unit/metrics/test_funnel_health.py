"""OTA funnel counts and times; generator health verdicts; clock offset estimate."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.clock import VirtualClock
from simulator.metrics.funnel import funnel_from_arrivals, funnel_from_sends
from simulator.metrics.health import (
    BACKEND_ERRORS,
    GENERATOR_SATURATED,
    INCOMPLETE,
    LOST_EVENTS,
    OK,
    GeneratorHealth,
    clock_offset_estimate,
    verdict,
)
from simulator.records import ArrivalRecord, SendRecord

T0 = 1_700_000_000.0


def _op(device: str, uuid: str, steps: list[tuple[str, float, str]], sent: bool = True) -> list[SendRecord]:
    out = []
    seen: dict[tuple[str, int], int] = {}
    for status, at, code in steps:
        occ = seen.get((status, 0), 0)
        seen[(status, 0)] = occ + 1
        out.append(
            SendRecord(
                key=(device, uuid, status, 0, occ),
                intended=T0 + at,
                sent=T0 + at if sent else None,
                t_ms=None,
                code=code,
            )
        )
    return out


def test_funnel_counts_codes_times_and_stuck() -> None:
    sends = (
        _op(
            "a",
            "u1",
            [
                ("Acknowledged", 1, ""),
                ("Downloading", 2, ""),
                ("Deploying", 3, ""),
                ("Deployed", 4, ""),
                ("Rebooting", 5, ""),
                ("Success", 9, ""),
            ],
        )
        + _op(
            "b",
            "u2",
            [
                ("Acknowledged", 0.5, ""),
                ("Downloading", 1, ""),
                ("Error", 2, "NetworkError"),
                ("Error", 4, "NetworkError"),
                ("Failure", 6, "InternalError"),
            ],
        )
        + _op("c", "u3", [("Acknowledged", 1, ""), ("Downloading", 2, "")])  # stuck
        + _op("c", "u4", [("Failure", 1.5, "UpdateAlreadyInProgress")])  # double update: new uuid fails
        + _op("d", "u5", [("Acknowledged", 1, "")], sent=False)  # never left the device
    )
    funnel = funnel_from_sends(sends, starts={("a", "u1"): T0 + 0.5})
    assert funnel.operations == 4
    assert (funnel.success, funnel.failure, funnel.stuck) == (1, 2, 1)
    assert funnel.by_code == {"InternalError": 1, "UpdateAlreadyInProgress": 1}
    assert funnel.error_codes == {"NetworkError": 2}
    assert funnel.stuck_operations == [("c", "u3")]
    assert funnel.stages["Acknowledged"] == 3 and funnel.stages["Success"] == 1
    assert funnel.stages["Failure"] == 2 and funnel.stages["Deploying"] == 1
    assert funnel.failure_pct == pytest.approx(66.667)
    summary = funnel.to_summary()
    # time to final: a 9 - 0.5 = 8.5 s (request time given), b 6 - 0.5 = 5.5 s, c/u4 0 s
    assert summary.time_to_final_ms.count == 3
    assert summary.time_to_final_ms.max == pytest.approx(8500, rel=1e-3)
    assert summary.time_to_ack_ms.max == pytest.approx(500, rel=1e-3)  # a: 1 - 0.5


def test_funnel_from_arrivals_counts_duplicates_once() -> None:
    arrivals = [
        ArrivalRecord(key=("a", "u", s, 0, 0), arrival=T0 + t, t_ms=None)
        for s, t in (("Acknowledged", 1), ("Acknowledged", 1.1), ("Success", 3))
    ]
    funnel = funnel_from_arrivals(arrivals)
    assert (funnel.operations, funnel.success, funnel.stages["Acknowledged"]) == (1, 1, 1)


def test_verdicts_and_priority() -> None:
    fine = dict(send_lag_p99_ms=3.0, cpu_pct=40.0, loop_lag_p99_ms=1.0)
    assert verdict(**fine).status == OK
    assert verdict(**fine).latency_trustworthy
    lagging = verdict(send_lag_p99_ms=80.0, cpu_pct=40.0, loop_lag_p99_ms=1.0, lost=3)
    assert lagging.status == GENERATOR_SATURATED and not lagging.latency_trustworthy
    assert lagging.untrusted_reason is not None and "send_lag p99 80 ms > 50 ms" in lagging.untrusted_reason
    assert "3 events lost" in lagging.reasons
    assert verdict(send_lag_p99_ms=1.0, cpu_pct=95.0, loop_lag_p99_ms=1.0).status == GENERATOR_SATURATED
    assert verdict(send_lag_p99_ms=1.0, cpu_pct=10.0, loop_lag_p99_ms=60.0).status == GENERATOR_SATURATED
    assert verdict(**fine, sdk_over_limit=True).status == GENERATOR_SATURATED
    assert verdict(**fine, lost=1).status == LOST_EVENTS
    assert verdict(**fine, errors=5, offered=1000).status == BACKEND_ERRORS  # 0.5% > 0.1%
    assert verdict(**fine, errors=1, offered=10_000).status == OK  # 0.01%: below the limit


def test_a_run_that_never_offered_its_plan_is_not_ok() -> None:
    """0 of 60,000 planned events sent (devices never online) must not read "ok"; an interrupted run is
    already marked partial, so its unplayed remainder is not held against it, unless it offered nothing at
    all (workers that never spawned, then Ctrl-C: once read "ok")."""
    fine = dict(send_lag_p99_ms=None, cpu_pct=None, loop_lag_p99_ms=None)
    nothing = verdict(**fine, planned=60_000, offered=0)
    assert nothing.status == INCOMPLETE
    assert nothing.reasons == ["60000 of 60000 planned events never offered (devices offline or run ended first)"]
    interrupted_empty = verdict(**fine, planned=60_000, offered=0, partial=True)
    assert interrupted_empty.status == INCOMPLETE
    assert interrupted_empty.reasons == nothing.reasons
    assert verdict(**fine, planned=60_000, offered=10, partial=True).status == OK
    assert verdict(**fine, planned=0, offered=0, partial=True).status == OK  # nothing planned: nothing missing
    assert verdict(**fine, planned=100, offered=100).status == OK
    assert verdict(**fine, planned=100, offered=99, lost=1).status == INCOMPLETE  # listed first; lost still listed
    assert verdict(send_lag_p99_ms=80.0, cpu_pct=None, loop_lag_p99_ms=None, planned=2, offered=1).status == (
        GENERATOR_SATURATED)


def test_cpu_percent_from_process_times_on_a_fake_clock() -> None:
    clock = VirtualClock()
    health = GeneratorHealth(clock)
    assert health.record_cpu(10.0) is None  # first reading: no interval yet
    for cpu in (10.5, 11.0, 11.9, 12.85):
        clock.advance(1.0)
        health.record_cpu(cpu)
    assert health.cpu_samples == pytest.approx([50.0, 50.0, 90.0, 95.0])
    assert health.cpu_pct() == pytest.approx(93.5)  # p90 (numpy linear interpolation)
    health.record_loop_lag(0.004)
    assert health.loop_lag.count == 1
    real = GeneratorHealth(clock)
    assert real.sample_cpu() is None
    clock.advance(1.0)
    pct = real.sample_cpu()  # psutil: this process's CPU over one (virtual) second
    assert pct is not None and pct >= 0.0


def test_clock_offset_estimate() -> None:
    pairs = [(T0 + k, T0 + k - 0.020 + 0.001 * (k % 3)) for k in range(10)]  # observer 20 ms behind
    offset = clock_offset_estimate(pairs)
    assert offset is not None and offset.samples == 10
    assert offset.estimate_s == pytest.approx(-0.020)
    assert offset.observer_behind
    assert clock_offset_estimate([]) is None


def test_cpu_samples_ship_as_counts_bounded_by_their_values_not_the_run() -> None:
    clock = VirtualClock()
    short, long = GeneratorHealth(clock), GeneratorHealth(clock)
    for i in range(600):  # 10 minutes of 1 s intervals; and 10 hours below
        short.add_cpu_sample(i % 97 + 0.25)
    for i in range(36_000):
        long.add_cpu_sample(i % 97 + 0.25)
    assert len(long.export()["cpu_counts"]) == len(short.export()["cpu_counts"]) == 97
    master = GeneratorHealth(clock)
    master.merge(long.export())
    master.merge(short.export())
    assert master.cpu_sample_count == 36_600
    raw = [round(i % 97 + 0.25, 1) for n in (36_000, 600) for i in range(n)]  # what a list of samples held
    assert master.cpu_pct() == round(float(np.percentile(raw, 90)), 1)
