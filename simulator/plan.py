"""The fleet plan: every action of every device, decided before the run from the scenario and its seed.

Randomness (docs/design.md principle 9): numpy `SeedSequence(seed)` children, built by spawn key so that a stream
depends only on (seed, key), never on the fleet size or the worker count:
- spawn_key (0, i): device i's own stream (request uuids, lifecycle draws);
- spawn_key (1,):   arrivals (simulator.arrival.schedule) then the mix entry of each operation;
- spawn_key (2, i): device i's id (simulator.ids).

Assignment rule: operation n arrives at a_n (wall seconds from the run's start) and goes to the device that
has been idle the longest -- devices become idle in (end time, index) order, and start idle, in index order,
at their online offset (`online_offsets_us`: 0 for every device without `fleet.ramp`) -- so the fleet is used
round-robin when it keeps up and no operation reaches a device before the ramp brings it online. A device
is busy from the arrival until its operation's last action (reboot included). When no device is idle the
operation is dropped (k6 `dropped_iterations`). Operations arriving before `duration` are planned whole;
those still running at the cut are counted `in_flight` (the runner decides whether to play past the cut).

Lazy (issue 14): the plan is a recipe, not a list. `FleetPlan.steps()` generates the operations in arrival
order, each with its actions, holding O(devices) state (one rng, firmware and free-at time per device) plus the
arrival offsets (8 bytes per operation: 11 MB for the 1.3 M operations of an hour at 2,600 events/s). Those
stay one array: the mix draws follow every arrival draw on the same stream, so generating arrivals in chunks
would change the plan; the mix draws themselves are taken in chunks (numpy draws doubles one at a time, so
chunks give the very same values). A process plays the
plan through its one `PlanCursor` (simulator.plan_cursor), which keeps only a look-ahead window. Passes that
need the whole plan (`operations`, `actions_for`, `stream`) make a fresh pass: tools and tests, never a run.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from simulator.events import KeyBook, PlannedAction
from simulator.ids import device_id, request_uuid
from simulator.lifecycle.plans import Firmware, plan_operation
from simulator.plan_cursor import PlanCursor
from simulator.plan_steps import PlanBounds, PlannedOperation, PlanStep, PlanTotals, StepSource, cut_step
from simulator.scenario.model import ArrivalSpec, DeviceStage, FleetSpec, Scenario

__all__ = [
    "ARRIVAL_STREAM",
    "DEVICE_STREAM",
    "NEVER_ONLINE",
    "FleetPlan",
    "PlanBounds",
    "PlanStep",
    "PlanTotals",
    "PlannedOperation",
    "ScheduleFn",
    "StepSource",
    "build_plan",
    "device_rng",
    "devices_online_at",
    "fleet_firmware",
    "online_offsets_us",
    "ramp_spawn_rate",
]

DEVICE_STREAM = 0
ARRIVAL_STREAM = 1
NEVER_ONLINE = -1  # online offset of a device the ramp never reaches (it gets no operation)

ScheduleFn = Callable[[ArrivalSpec, float, np.random.Generator], np.ndarray]


def device_rng(seed: int, index: int) -> np.random.Generator:
    """Device `index`'s own stream (the same in the planner and in a backend-driven device)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(DEVICE_STREAM, index)))


def online_offsets_us(ramp: Sequence[DeviceStage], devices: int) -> tuple[int, ...]:
    """When each device comes online, µs from the run's start: device i when the ramp reaches i + 1 devices.

    The ramp moves linearly from the previous stage's count (0 at the start) to the stage's `devices` over its
    `duration`; the time is rounded up to the µs (a device is never online before the ramp reaches it), in
    integers so it is exact. No ramp: 0 for every device. A device the ramp never reaches: NEVER_ONLINE.
    """
    if not ramp:
        return (0,) * devices
    offsets = [NEVER_ONLINE] * devices
    stage_start_us, before = 0, 0
    for stage in ramp:
        span_us, after = round(stage.duration * 1e6), min(stage.devices, devices)
        for count in range(before + 1, after + 1):  # device count - 1 reaches the ramp inside this stage
            offsets[count - 1] = stage_start_us + -(-span_us * (count - before) // (after - before))
        stage_start_us, before = stage_start_us + span_us, max(before, after)
    return tuple(offsets)


def devices_online_at(ramp: Sequence[DeviceStage], t_s: float, devices: int) -> int:
    """Devices the ramp has online `t_s` wall seconds into the run (whole devices, at most `devices`).

    No ramp: the whole fleet. After the last stage: its count. The counterpart of online_offsets_us.
    """
    if not ramp:
        return devices
    # Integers as in online_offsets_us, so the count at t is exactly the number of offsets <= t.
    t_us, stage_start_us, before = round(t_s * 1e6), 0, 0
    for stage in ramp:
        span_us, after = round(stage.duration * 1e6), min(stage.devices, devices)
        if t_us < stage_start_us + span_us:
            grown = max(0, t_us - stage_start_us) * max(0, after - before) // span_us
            return before + grown
        stage_start_us, before = stage_start_us + span_us, max(before, after)
    return before


def ramp_spawn_rate(ramp: Sequence[DeviceStage]) -> float:
    """Devices per second that keep up with the steepest stage (at least 1)."""
    rate, before = 1.0, 0
    for stage in ramp:
        if stage.duration > 0:
            rate = max(rate, (stage.devices - before) / stage.duration)
        before = max(before, stage.devices)
    return rate


def fleet_firmware(fleet: FleetSpec) -> tuple[Firmware, Firmware]:
    """(installed image, image a successful OTA installs) of every device of `fleet`."""
    base = fleet.base_image
    old = Firmware(base.name, base.version, base.build_id)
    return old, Firmware(base.name, fleet.target_version, f"{base.build_id}+{fleet.target_version}")


@dataclass(frozen=True)
class FleetPlan:
    """Everything the fleet will do, as a recipe: identical whatever the worker count.

    `steps()` is a fresh pass each call. `cursor` is this process's one cursor over it (the run pulls actions
    from there, and its totals and digest come from there: exact once the cursor reached the end)."""

    seed: int
    device_ids: tuple[str, ...]
    cut_us: int  # the run's duration: operations arriving later were not planned
    source: StepSource = field(repr=False, compare=False)
    online_us: tuple[int, ...] = ()  # per device: online offset (online_offsets_us); () = all at 0
    bounds: PlanBounds | None = None

    def steps(self) -> Iterator[PlanStep | None]:
        """The plan's steps in arrival order (None: a dropped arrival), the bounds' cut applied."""
        if self.bounds is None:
            return self.source()
        return _cut_steps(self.source(), self.bounds)

    def bounded(self, bounds: PlanBounds) -> FleetPlan:
        """The same plan as a run bounded by `bounds` plays it (a new plan with its own cursor)."""
        return FleetPlan(seed=self.seed, device_ids=self.device_ids, cut_us=self.cut_us, source=self.source,
                         online_us=self.online_us, bounds=bounds)

    @cached_property
    def cursor(self) -> PlanCursor:
        """This process's cursor over the plan (created on first use; one per plan object)."""
        return PlanCursor(self.steps, self.device_ids, self.cut_us, self.bounds, self.digest_head())

    @property
    def totals(self) -> PlanTotals:
        """Whole-plan counts and digest: the cursor run to the end (cheap once the run played it)."""
        return self.cursor.finish()

    @property
    def planned_events(self) -> int:
        """OTAEvent publishes in the plan."""
        return self.totals.planned_events

    @property
    def dropped(self) -> int:
        """Operations that found no idle device."""
        return self.totals.dropped

    @property
    def last_action_s(self) -> float:
        """Offset of the plan's last action, in seconds (0 for an empty plan)."""
        return self.totals.last_offset_us / 1e6

    @property
    def in_flight(self) -> int:
        """Operations still running at the cut."""
        return self.totals.in_flight

    def digest_head(self) -> bytes:
        """What the digest covers before the steps: ids, online offsets and the cut."""
        return repr((self.seed, self.device_ids, self.online_us, self.cut_us)).encode()

    def online_at_us(self, device_index: int) -> int:
        """Device `device_index`'s online offset (µs; NEVER_ONLINE when the ramp never reaches it)."""
        return self.online_us[device_index] if self.online_us else 0

    def partition(self, worker_index: int, worker_count: int) -> list[int]:
        """The device indexes worker `worker_index` (0-based) of `worker_count` runs: i % count == index."""
        if worker_count < 1 or not 0 <= worker_index < worker_count:
            raise ValueError(f"worker {worker_index} of {worker_count} does not exist")
        return list(range(worker_index, len(self.device_ids), worker_count))

    # -- whole passes (a fresh stream each): tools and tests; a run plays through `cursor` -----------

    @property
    def operations(self) -> tuple[PlannedOperation, ...]:
        """Every planned operation in arrival order (a whole pass, O(operations))."""
        return tuple(op for step in self.steps() if step is not None for op in step.operations)

    def actions_for(self, device_index: int) -> list[PlannedAction]:
        """Device `device_index`'s actions, sorted by offset (a whole pass, O(that device's actions))."""
        return [a for step in self.steps() if step is not None and step.device == device_index
                for a in step.actions]

    def stream(self, steps: Iterable[PlanStep | None] | None = None) -> Iterator[tuple[PlannedAction, int]]:
        """Every action with its order within its device, sorted by (offset, device, order); `steps` defaults
        to a fresh pass.

        A merge as the steps come: no step starts before its `at_us`, so every action due before the next
        step's `at_us` is final. Memory: the actions of the steps in progress (about one per device)."""
        order: dict[int, int] = {}
        heap: list[tuple[int, int, int, PlannedAction]] = []
        for step in self.steps() if steps is None else steps:
            if step is None:
                continue
            while heap and heap[0][0] < step.at_us:
                _, _, n, action = heapq.heappop(heap)
                yield action, n
            base = order.get(step.device, 0)
            for n, action in enumerate(step.actions, start=base):
                heapq.heappush(heap, (action.offset_us, action.device, n, action))
            order[step.device] = base + len(step.actions)
        while heap:
            _, _, n, action = heapq.heappop(heap)
            yield action, n


def _cut_steps(steps: Iterator[PlanStep | None], bounds: PlanBounds) -> Iterator[PlanStep | None]:
    for step in steps:
        yield None if step is None else cut_step(step, bounds)


def _mix_names(scenario: Scenario) -> list[str]:
    return [entry.name or str(i) for i, entry in enumerate(scenario.lifecycle)]


# Mix draws taken from the arrival stream per chunk: 64 Ki doubles (512 KB) at a time.
_MIX_CHUNK = 1 << 16


def build_plan(scenario: Scenario, schedule_fn: ScheduleFn | None = None) -> FleetPlan:
    """The run's plan (lazy: `steps()` generates it). `schedule_fn` defaults to simulator.arrival.schedule
    (injectable for tests)."""
    if schedule_fn is None:
        from simulator.arrival import schedule

        schedule_fn = schedule
    fleet = scenario.fleet
    n = fleet.devices
    ids = tuple(device_id(scenario.seed, i, fleet.id_scheme, fleet.id_prefix) for i in range(n))
    online = online_offsets_us(fleet.ramp, n)
    fn = schedule_fn

    def source() -> Iterator[PlanStep | None]:
        return _plan_steps(scenario, fn, online)

    return FleetPlan(seed=scenario.seed, device_ids=ids, cut_us=round(scenario.duration * 1e6), source=source,
                     online_us=online)


def _plan_steps(scenario: Scenario, schedule_fn: ScheduleFn, online: tuple[int, ...]) -> Iterator[PlanStep | None]:
    """The planner: operations in arrival order (None: dropped), each with its actions."""
    seed = scenario.seed
    n = scenario.fleet.devices
    arrival_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(ARRIVAL_STREAM,)))
    arrivals = np.asarray(schedule_fn(scenario.arrival, scenario.duration, arrival_rng), dtype=np.float64)
    weights = np.array([max(e.weight, 0.0) for e in scenario.lifecycle], dtype=np.float64)
    # The cumulative weights as Python floats: bisect_right compares the same doubles np.searchsorted(side=
    # "right") would, without a numpy call per operation (~10 µs each).
    bounds: list[float] = (np.cumsum(weights) / weights.sum()).tolist() if len(weights) and weights.sum() > 0 \
        else [1.0]
    last_entry = len(scenario.lifecycle) - 1
    names = _mix_names(scenario)
    old_fw, new_fw = fleet_firmware(scenario.fleet)

    rngs: dict[int, np.random.Generator] = {}
    firmware: dict[int, Firmware] = {}
    # Without a ramp every device starts idle at 0 in index order (the plan of a scenario without `ramp` is
    # unchanged); a later online offset is a free-at time, so the device joins the idle queue only then.
    idle: deque[int] = deque(i for i in range(n) if online[i] == 0)
    busy: list[tuple[int, int]] = [(t, i) for i, t in enumerate(online) if t > 0]  # (free at µs, device)
    heapq.heapify(busy)
    for chunk_start in range(0, len(arrivals), _MIX_CHUNK):
        chunk = arrivals[chunk_start:chunk_start + _MIX_CHUNK]
        mix_u = arrival_rng.random(len(chunk))
        for arrival, u in zip(chunk.tolist(), mix_u.tolist(), strict=True):
            start_us = round(arrival * 1e6)
            while busy and busy[0][0] <= start_us:
                idle.append(heapq.heappop(busy)[1])
            if not idle:
                yield None
                continue
            dev = idle.popleft()
            entry_index = min(bisect_right(bounds, u), last_entry)
            entry = scenario.lifecycle[entry_index]
            spec = entry.random if entry.random is not None else entry.scripted
            assert spec is not None, "a mix entry is random or scripted (scenario validation)"
            rng = rngs.get(dev)
            if rng is None:
                rng = rngs[dev] = device_rng(seed, dev)
            current = firmware.get(dev, old_fw)
            uuid = request_uuid(rng)
            # A book per operation: every key carries the operation's requestUUID, so occurrences never
            # count across operations, and one book for the fleet would grow with every event of the run.
            op = plan_operation(dev, spec, rng, uuid, start_us, scenario.time_scale, current, new_fw, KeyBook())
            firmware[dev] = op.firmware_after
            heapq.heappush(busy, (max(op.end_us, start_us), dev))
            # Stable: only orders equal offsets (an operation's actions are already in time order).
            actions = tuple(sorted(op.actions, key=lambda a: a.offset_us))
            yield PlanStep(dev, start_us, (PlannedOperation(dev, uuid, start_us, op.end_us, op.outcome,
                                                            names[entry_index]),), actions)
