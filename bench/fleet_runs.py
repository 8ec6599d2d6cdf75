"""Scenario-driven runs without Locust: a steady scenario, ProcessFleet + drive_device in this process, and
the statistics of the SendRecords it leaves (send lag, achieved rate, overruns, publish->ack).

Used by bench/pacing.py and bench/latency_truth.py, always in a child process that monkey-patched gevent
first (as Locust does); the simulator is imported lazily for that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import credentials_dir, percentile

__all__ = ["embedded_target", "plain_fleet_run", "record_stats", "steady_scenario"]


def steady_scenario(
    devices: int,
    events_per_s: float,
    duration_s: float,
    seed: int = 3,
    transport: str = "lean",
    realm: str = "bench",
    ack_to_final_s: float = 0.1,
) -> Any:
    """A scenario whose plan offers `events_per_s` OTAEvents per second: OTA operations arrive at a constant
    rate of events_per_s / 2, each a scripted Acknowledged then Failure(Canceled) `ack_to_final_s` later
    (a Cancel during Acknowledged, docs/protocol.md section 4; the loader's machine check accepts it). No
    reboot, so no reconnect noise; the plan assigns each operation to the device idle the longest
    (simulator.plan)."""
    from simulator.scenario.model import (
        ArrivalSpec,
        FleetSpec,
        LifecycleMixEntry,
        Scenario,
        ScriptedLifecycle,
        ScriptedStep,
    )

    steps = (ScriptedStep("Acknowledged"), ScriptedStep("Failure", code="Canceled", delay=ack_to_final_s))
    return Scenario(
        name=f"bench-steady-{devices}x{events_per_s:g}",
        realm=realm,
        seed=seed,
        fleet=FleetSpec(devices=devices, id_scheme="sequential", id_prefix="bench"),
        duration=duration_s,
        arrival=ArrivalSpec(model="constant", rate=events_per_s / 2.0),
        lifecycle=(LifecycleMixEntry(weight=1.0, scripted=ScriptedLifecycle(steps=steps)),),
        transport=transport,  # type: ignore[arg-type]
    )


def plain_fleet_run(
    target: Any,
    scenario: Any,
    drain_s: float = 2.0,
    connect_parallel: int = 50,
    gc_freeze: bool = False,
    during: Callable[[Any], None] | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """Play `scenario` in this (gevent-patched) process through the spine's plain gevent driver loop
    (simulator.run.gevent_driver.play_fleet: ProcessFleet + drive_device, no Locust). Returns (SendRecords,
    info). The run starts when every device is online (ProcessFleet.begin) and lasts duration + drain_s;
    `during(fleet)` then runs in its own greenlet. gc_freeze=False by default: the Locust driver does not
    freeze either, and the comparisons here must run the same code."""
    from simulator.generator.fleet import FleetCallbacks
    from simulator.run.gevent_driver import play_fleet
    from simulator.run.plans import plan_for

    records: list[Any] = []
    plan = plan_for(scenario)
    played = play_fleet(scenario, plan, target, end_s=scenario.duration + drain_s,
                        callbacks=FleetCallbacks(on_record=records.append), connect_parallel=connect_parallel,
                        gc_freeze=gc_freeze, during=during)
    info = {
        "connect_s": round(played.connect_s, 2),
        "planned_events": plan.planned_events,
        "failed_devices": len(played.fleet.failed),
        "run_start_wall": played.fleet.run_start_wall,
    }
    return records, info


def record_stats(records: Sequence[Any], planned_events: int, duration_s: float) -> dict[str, Any]:
    """Send lag (sent - intended), publish->ack, achieved vs intended rate, overruns, from SendRecords."""
    sent = [r for r in records if r.sent is not None]
    lags_ms = [(r.sent - r.intended) * 1000 for r in sent]
    acks_ms = [(r.acked - r.sent) * 1000 for r in sent if r.acked is not None and r.error is None]
    out: dict[str, Any] = {
        "planned": planned_events,
        "sent": len(sent),
        "acked": len(acks_ms),
        "errors": sum(1 for r in records if r.error is not None),
    }
    if len(sent) > 2:
        intended = sorted(r.intended for r in sent)
        actual = sorted(r.sent for r in sent)
        rate_intended = (len(sent) - 1) / (intended[-1] - intended[0])
        # The achieved MEAN rate: the least-squares slope of (k-th intended time, k-th actual send time). The
        # first-to-last span alone lets one late first send (a 75 ms start-up stall over a 5 s run) read as a
        # 1.5% rate error while the other 4,999 sends kept the schedule; the fit weighs every send. Both kept.
        slope = _slope(intended, actual)
        rate_span = (len(sent) - 1) / (actual[-1] - actual[0])
        rate_achieved = rate_intended / slope if slope > 0 else 0.0
        out.update(
            target_rate=round(planned_events / duration_s, 1),
            intended_rate=round(rate_intended, 1),
            achieved_rate=round(rate_achieved, 1),
            rate_error_pct=round(100 * (rate_achieved / rate_intended - 1), 3),
            achieved_rate_first_to_last=round(rate_span, 1),
            rate_error_first_to_last_pct=round(100 * (rate_span / rate_intended - 1), 3),
        )
    out["send_lag_ms"] = {q: _round(percentile(lags_ms, p)) for q, p in (("p50", 50), ("p99", 99), ("max", 100))}
    out["overruns"] = {f"lag_gt_{t}ms": sum(1 for x in lags_ms if x > t) for t in (1, 5, 10, 100)}
    out["ack_ms"] = {q: _round(percentile(acks_ms, p)) for q, p in (("p50", 50), ("p99", 99), ("max", 100))}
    return out


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys on xs (1.0 = the sends kept the intended pace)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var > 0 else 0.0


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def embedded_target(info: Any, credentials: Path | None = None) -> Any:
    """simulator.generator.target.TargetInfo for an EmbeddedBackend's BackendInfo (or its dict)."""
    from simulator.generator.target import TargetInfo

    doc = info if isinstance(info, dict) else info.__dict__
    return TargetInfo(
        kind="embedded",
        realm=doc["realm"],
        pairing_url=doc["pairing_url"],
        agent_jwt=doc["agent_jwt"],
        ca_file=doc["ca_file"],
        credentials_dir=str(credentials or credentials_dir(doc["realm"])),
        control_url=doc.get("control_url", ""),
        broker_url=doc.get("broker_url", ""),
        broker_kind=doc.get("broker_kind", ""),
    )
