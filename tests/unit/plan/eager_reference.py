"""The eager planner as it was before the plan became lazy (issue 14): every action of every device built
before the run, and the run's cut applied device by device. Kept here only as the oracle the lazy stream is
compared with (tests/unit/plan/test_lazy_plan.py): the same actions, byte for byte."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from simulator.events import OTA_EVENT_INTERFACE, ActionKind, KeyBook, PlannedAction
from simulator.ids import request_uuid
from simulator.lifecycle.plans import Firmware, plan_operation
from simulator.plan import ARRIVAL_STREAM, PlannedOperation, ScheduleFn, device_rng, fleet_firmware, online_offsets_us
from simulator.scenario.model import Scenario


@dataclass(frozen=True)
class EagerPlan:
    operations: tuple[PlannedOperation, ...]
    dropped: int
    actions: tuple[tuple[PlannedAction, ...], ...]  # per device


@dataclass(frozen=True)
class EagerCut:
    actions: tuple[tuple[PlannedAction, ...], ...]
    in_flight: int
    cut_ids: tuple[tuple[int, str], ...]
    cut_events: int


def eager_plan(scenario: Scenario, schedule_fn: ScheduleFn) -> EagerPlan:
    seed, n = scenario.seed, scenario.fleet.devices
    arrival_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(ARRIVAL_STREAM,)))
    arrivals = np.asarray(schedule_fn(scenario.arrival, scenario.duration, arrival_rng), dtype=np.float64)
    mix_u = arrival_rng.random(len(arrivals))
    weights = np.array([max(e.weight, 0.0) for e in scenario.lifecycle], dtype=np.float64)
    bounds = np.cumsum(weights) / weights.sum() if len(weights) and weights.sum() > 0 else np.array([1.0])
    names = [entry.name or str(i) for i, entry in enumerate(scenario.lifecycle)]
    old_fw, new_fw = fleet_firmware(scenario.fleet)
    rngs: dict[int, np.random.Generator] = {}
    firmware: dict[int, Firmware] = {}
    occurrences = KeyBook()  # the eager planner's one book for the fleet
    actions: list[list[PlannedAction]] = [[] for _ in range(n)]
    online = online_offsets_us(scenario.fleet.ramp, n)
    idle: deque[int] = deque(i for i in range(n) if online[i] == 0)
    busy: list[tuple[int, int]] = [(t, i) for i, t in enumerate(online) if t > 0]
    heapq.heapify(busy)
    ops: list[PlannedOperation] = []
    dropped = 0
    for arrival, u in zip(arrivals.tolist(), mix_u.tolist(), strict=True):
        start_us = round(arrival * 1e6)
        while busy and busy[0][0] <= start_us:
            idle.append(heapq.heappop(busy)[1])
        if not idle:
            dropped += 1
            continue
        dev = idle.popleft()
        entry_index = min(int(np.searchsorted(bounds, u, side="right")), len(scenario.lifecycle) - 1)
        entry = scenario.lifecycle[entry_index]
        spec = entry.random if entry.random is not None else entry.scripted
        assert spec is not None
        rng = rngs.setdefault(dev, device_rng(seed, dev))
        uuid = request_uuid(rng)
        op = plan_operation(dev, spec, rng, uuid, start_us, scenario.time_scale, firmware.get(dev, old_fw), new_fw,
                            occurrences)
        firmware[dev] = op.firmware_after
        actions[dev].extend(op.actions)
        heapq.heappush(busy, (max(op.end_us, start_us), dev))
        ops.append(PlannedOperation(dev, uuid, start_us, op.end_us, op.outcome, names[entry_index]))
    for acts in actions:
        acts.sort(key=lambda a: a.offset_us)
    return EagerPlan(tuple(ops), dropped, tuple(tuple(a) for a in actions))


def eager_cut(plan: EagerPlan, duration_s: float, graceful_stop_s: float) -> EagerCut:
    duration_us = round(duration_s * 1e6)
    limit_us = round((duration_s + graceful_stop_s) * 1e6)
    cut_devices = {op.device for op in plan.operations if op.end_us > limit_us}
    kept: list[tuple[PlannedAction, ...]] = []
    cut_events = 0
    for index, actions in enumerate(plan.actions):
        until_us = duration_us if index in cut_devices else limit_us
        kept.append(tuple(a for a in actions if a.offset_us + a.duration_us <= until_us))
        cut_events += sum(1 for a in actions if a.kind is ActionKind.PUBLISH and a.interface == OTA_EVENT_INTERFACE
                          and a.offset_us + a.duration_us > until_us)
    return EagerCut(actions=tuple(kept), in_flight=sum(1 for op in plan.operations if op.end_us > duration_us),
                    cut_ids=tuple((op.device, op.uuid) for op in plan.operations if op.end_us > limit_us),
                    cut_events=cut_events)
