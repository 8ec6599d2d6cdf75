"""The run fence: where a run begins in its observer's arrival log, so that a join never sees another run.

Why a fence: event keys repeat across runs. The same seed gives the same device ids and requestUUIDs, so a
second run against a long-lived `fleetsim backend` (or a real Astarte whose AMQP queue outlived the last run)
would join the previous run's arrivals: negative end-to-end latencies ("observer clock behind by 108 s"),
delivered/lost counts that mix both runs, and duplicate occurrences counted against this run.

Why a mark and not a run nonce in the payload: OTAEvent's five leaves are Edgehog's interface (requestUUID,
status, statusProgress, statusCode, message) and a load test must publish them as the runtime does; a nonce
would have to ride in `message` or change requestUUIDs, and then the plan would no longer be the seed's plan.
A mark needs no protocol change:
  - embedded collector: `POST /runs/mark` when the observer starts (before any device of the run publishes an
    OTAEvent) returns the collector's arrival count (`cursor`) and its clock (`at`); only rows from `cursor` are
    this run's, and their occurrences are numbered from 0 again (simulator.events.KeyBook), as the devices
    number theirs. The round trip around the mark measures the generator/collector clock offset (`offset_s`,
    known to +- `uncertainty_s`): what the join may tolerate before calling an arrival impossible.
  - AMQP / webhook trigger observers (same process, same clock: offset 0): messages already queued when the
    observer starts are purged and counted, and an OTAEvent whose timestamp (the device's `t`) is earlier than
    the mark by more than `early_t_margin_s` (negative clock_skew faults plus a few seconds of host clock
    disagreement) is ignored as `before_run`, counted.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunFence"]


@dataclass(frozen=True)
class RunFence:
    """Taken when the observer starts (before the run's first OTAEvent): see the module docstring."""

    at: float  # wall s (observer clock) of the mark; arrivals before it are never this run's
    cursor: int = 0  # arrival-log rows recorded before the mark (embedded collector); never joined
    offset_s: float = 0.0  # observer clock minus generator clock, measured at the mark (0: the same clock)
    uncertainty_s: float = 0.0  # the offset is known to +- this (half the mark's round trip)
    ignored_before: int = 0  # messages already waiting when the run began (an AMQP queue purged at the mark)
    kind: str = ""  # "collector cursor" | "trigger mark": how the fence was taken (summary.json)
