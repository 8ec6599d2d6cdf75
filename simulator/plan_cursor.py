"""`PlanCursor`: one process's pull over its plan's steps (issue 14: memory O(devices) + a look-ahead window).

The plan is generated in arrival order as the run reaches it (`advance(until_us)`); a step's actions are kept
only for the devices this process plays (`keep`), until their device takes them (`take`); every step, kept or
not, goes into the totals and the digest, so each process proves it generated the same whole plan. Pure: no
clock, no I/O (the caller says how far to advance).

Bounded work (issue 14, hour-long runs): `advance(until_us, max_steps)` generates at most `max_steps` steps,
so a caller on an event loop (simulator.generator.plan_pace) can yield between slices instead of generating a
whole catch-up at once; and a process that stops early never has to generate the rest of the plan: `progress()`
is the totals of what was generated so far, and `digest_at(steps)` the digest of the plan's first `steps` steps
(kept at every power of two: O(log steps) memory), which two processes compare when one of them stopped early.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from simulator.events import ActionKind, PlannedAction
from simulator.plan_steps import PlanBounds, PlanStep, PlanTotals, actions_digest_bytes, digest_of

__all__ = ["END_US", "STARTS_RETAIN_US", "PlanCursor", "PlannedStarts"]

# A kept operation's planned start is remembered until the plan is this far past it (µs): the funnel reads it
# when the operation's first event is sent (simulator.metrics.funnel FunnelBuilder.add), at most the device's
# start lag after it (an operation more than MAX_START_LAG_S = 5 s late is dropped, simulator.generator.fleet),
# and the cursor runs LOOKAHEAD_US = 5 s ahead. 30 s covers both with room; memory: one entry (~200 bytes) per
# operation of the last 30 s of plan (1,300 operations/s: ~8 MB).
STARTS_RETAIN_US = 30_000_000
END_US = 1 << 62  # µs: past any plan (`advance(END_US)` generates the rest)


class PlannedStarts(Mapping[tuple[str, str], float]):
    """Planned starts of the recent kept operations, (device id, requestUUID) -> wall seconds: the funnel's
    `starts` (simulator.metrics.funnel), bounded (STARTS_RETAIN_US)."""

    def __init__(self) -> None:
        self.run_start_wall = 0.0  # set when the run's clock starts (operation offsets count from it)
        self._start_us: dict[tuple[str, str], int] = {}
        # The same keys in arrival order, for the eviction: a deque, because iterating a dict from its front
        # walks over the slots of the entries deleted since its last resize (O(n) per eviction).
        self._order: deque[tuple[int, tuple[str, str]]] = deque()

    def add(self, key: tuple[str, str], start_us: int) -> None:
        self._start_us[key] = start_us
        self._order.append((start_us, key))
        while self._order[0][0] + STARTS_RETAIN_US < start_us:
            self._start_us.pop(self._order.popleft()[1], None)

    def __getitem__(self, key: tuple[str, str]) -> float:
        return self.run_start_wall + self._start_us[key] / 1e6

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._start_us)

    def __len__(self) -> int:
        return len(self._start_us)


class PlanCursor:
    """Steps generated up to `horizon_us`; the kept devices' actions not yet taken; running totals."""

    def __init__(self, steps: Callable[[], Iterator[PlanStep | None]], device_ids: tuple[str, ...], cut_us: int,
                 bounds: PlanBounds | None, digest_head: bytes) -> None:
        """`steps`: a fresh pass over the plan (FleetPlan.steps); the rest says what the totals need."""
        self._source = steps
        self.device_ids = device_ids
        self.cut_us = cut_us
        self.bounds = bounds
        self.horizon_us = -1  # every step with at_us <= horizon_us has been generated
        self.done = False  # the stream is exhausted: the totals are exact
        self.starts = PlannedStarts()
        self._steps: Iterator[PlanStep | None] | None = None
        self._next: PlanStep | None = None  # generated, beyond the horizon
        self._kept: set[int] = set()
        self._buffers: dict[int, list[PlannedAction]] = {}
        self._head = digest_head
        self._digest = digest_of(digest_head)
        self._operations = self._dropped = self._events = self._actions = self._in_flight = 0
        self._last_us = self._cut_ops = self._cut_events = 0
        self.steps_done = 0  # steps generated so far (dropped arrivals not included: they are `dropped`)
        # The digest after the first 2**k steps, for every k so far: what a process that stopped early
        # compares (digest_at); ~45 entries for any plan.
        self._marks: dict[int, str] = {}
        self._cut_ids: list[tuple[str, str]] = []
        self._totals: PlanTotals | None = None

    def keep(self, indexes: Iterable[int]) -> None:
        """Keep these devices' actions (this process plays them). Before the first step is generated: a device
        kept later would have lost the actions already generated."""
        wanted = set(indexes) - self._kept
        # A step pulled ahead (advance(-1)) is not generated yet, and a dropped arrival has no action.
        if wanted and self.steps_done:
            raise RuntimeError("PlanCursor.keep after the plan started: earlier actions of those devices are gone")
        self._kept |= wanted

    def advance(self, until_us: int, max_steps: int | None = None) -> list[int]:
        """Generate every step arriving by `until_us`, or only the next `max_steps` of them; the kept devices
        that received actions (in order). With a budget, `reached(until_us)` says whether it got there (else
        `horizon_us` stops just before the next step: every step before it is generated)."""
        if self._steps is None:
            self._steps = self._source()
        fed: list[int] = []
        budget = -1 if max_steps is None else max_steps
        while not self.done:
            step = self._next if self._next is not None else self._pull()
            if step is None:
                break
            if step.at_us > until_us:
                self._next = step
                break
            if budget == 0:  # out of budget, this step not generated: the horizon stops before it
                self._next = step
                self.horizon_us = max(self.horizon_us, step.at_us - 1)
                return fed
            budget -= 1
            self._next = None
            if self._consume(step):
                fed.append(step.device)
        self.horizon_us = END_US if self.done else max(self.horizon_us, until_us)
        return fed

    def reached(self, until_us: int) -> bool:
        """Every step arriving by `until_us` is generated (or the plan is over)."""
        return self.done or self.horizon_us >= until_us

    def drain(self) -> Iterator[PlanStep]:
        """The rest of the stream, each step counted as it is yielded (one pass for a tool that also wants
        the steps: `fleetsim plan`)."""
        if self._steps is None:
            self._steps = self._source()
        while not self.done:
            step = self._next if self._next is not None else self._pull()
            self._next = None
            if step is None:
                break
            self._consume(step)
            yield step
        self.horizon_us = END_US

    def stop_keeping(self) -> None:
        """This process plays no more (its devices stopped): forget the buffered actions and keep no new ones,
        so that generating the rest of the plan for its totals (finish) holds no action (an early stop of a
        long run would otherwise buffer every action left in the plan)."""
        self._kept.clear()
        self._buffers.clear()

    def take(self, index: int) -> list[PlannedAction]:
        """Device `index`'s generated actions, handed over (the cursor forgets them)."""
        return self._buffers.pop(index, [])

    def exhausted(self, index: int) -> bool:
        """Nothing more will ever come for device `index`."""
        return self.done and index not in self._buffers

    def known_totals(self) -> PlanTotals | None:
        """The totals once the stream is exhausted (None before: they would not be exact)."""
        return self.finish() if self.done else None

    def finish(self) -> PlanTotals:
        """Run the stream to its end (kept devices' actions stay buffered) and return the exact totals. On an
        event loop, generate the rest in slices first (simulator.generator.plan_pace.finish_plan)."""
        if self._totals is None:
            self.advance(END_US)
            self._totals = self.progress()
        return self._totals

    def progress(self) -> PlanTotals:
        """The totals of the steps generated so far (the whole plan's once `done`), without generating more:
        what a process that stopped early played from. Its digest covers `steps_done` steps."""
        if self._totals is not None:
            return self._totals
        return PlanTotals(
            operations=self._operations, dropped=self._dropped, planned_events=self._events,
            actions=self._actions, in_flight=self._in_flight, last_offset_us=self._last_us,
            cut_operations=self._cut_ops, cut_events=self._cut_events, cut_ids=tuple(self._cut_ids),
            digest=self._digest.hexdigest()[:16])

    def digest_mark(self) -> tuple[int, str]:
        """(steps, digest of the plan's first `steps` steps) at the last power of two of steps generated, or of
        the whole plan once `done` (steps = steps_done): the part of this process's plan another one can check
        with `digest_at` without generating further than it did. (0, digest of the head) before any step."""
        if self.done:
            return self.steps_done, self.progress().digest
        steps = 1 << (self.steps_done.bit_length() - 1) if self.steps_done else 0
        return steps, self._marks[steps] if steps else digest_of(self._head).hexdigest()[:16]

    def digest_at(self, steps: int) -> str | None:
        """The digest of the plan's first `steps` steps, when this cursor can say it without generating
        further: `steps` a power of two it has generated, the whole plan's count once `done`, or 0 (the head
        only). None: this cursor cannot say (it has not generated that far, or that plan is shorter)."""
        if self.done and steps == self.steps_done:
            return self.progress().digest
        if steps == 0:
            return digest_of(self._head).hexdigest()[:16]
        return self._marks.get(steps)

    def digest_agrees(self, steps: int, digest: str, whole: bool) -> bool:
        """Another process's `digest_mark()` (with `whole`: its plan was generated to its end) is this plan's:
        the same digest over the same first `steps` steps, and with `whole` the same number of steps. Exact
        once this cursor is `done`; before, False unless it has generated past `steps`."""
        if whole:
            return self.done and steps == self.steps_done and digest == self.progress().digest
        return self.digest_at(steps) == digest

    def _pull(self) -> PlanStep | None:
        """The next step; dropped arrivals are counted on the way; None at the end."""
        assert self._steps is not None
        for step in self._steps:
            if step is not None:
                return step
            self._dropped += 1
        self.done = True
        return None

    def _consume(self, step: PlanStep) -> bool:
        self._digest.update(actions_digest_bytes(step.actions))
        self.steps_done += 1
        if self.steps_done & (self.steps_done - 1) == 0:  # a power of two (hexdigest does not end the hash)
            self._marks[self.steps_done] = self._digest.hexdigest()[:16]
        self._actions += len(step.actions)
        self._events += sum(1 for a in step.actions if a.kind is ActionKind.PUBLISH)
        if step.actions:  # sorted by offset: the last is the latest
            self._last_us = max(self._last_us, step.actions[-1].offset_us)
        kept = step.device in self._kept
        for op in step.operations:
            self._operations += 1
            self._in_flight += op.end_us > self.cut_us
            if kept:
                self.starts.add((self.device_ids[op.device], op.uuid), op.start_us)
        if step.cut and self.bounds is not None:
            limit_us = self.bounds.limit_us
            cut = [op for op in step.operations if op.end_us > limit_us]
            self._cut_ops += len(cut)
            self._cut_events += step.cut_events
            self._cut_ids.extend((self.device_ids[op.device], op.uuid) for op in cut)
        if not kept or not step.actions:
            return False
        self._buffers.setdefault(step.device, []).extend(step.actions)
        return True
