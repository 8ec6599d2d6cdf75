"""The planner's remembered machine answers (simulator.lifecycle.transcripts) are a fresh machine's: plan_random
plans what running each operation's inputs through its own OtaMachine planned (7ee1af5's way), over consecutive
operations of every outcome, retries, cancels, double updates, slow shutdowns and streaming; uuids are replayed by
role (equal uuids and different ones are different sequences); refused sequences are never remembered."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import IllegalTransition
from simulator.events import KeyBook, OtaStatus, OtaStatusCode, PlannedAction
from simulator.ids import request_uuid
from simulator.lifecycle.draws import OUTCOMES, draw_operation, operation_inputs
from simulator.lifecycle.inputs import CancelRequested, DownloadProgress, PoweredOff, StartUpdate, UpdateRequested
from simulator.lifecycle.machine import OtaMachine
from simulator.lifecycle.plans import Firmware, OperationPlan, input_actions, plan_random
from simulator.lifecycle.transcripts import Transcripts
from simulator.plan import device_rng
from simulator.scenario.model import Distribution, RandomLifecycle

OLD, NEW = Firmware("os", "1.0.0", "b1"), Firmware("os", "1.1.0", "b1+1.1.0")


def plan_with_a_fresh_machine(device: int, spec: RandomLifecycle, rng: np.random.Generator, uuid: str,
                              start_us: int, time_scale: float, occurrences: KeyBook) -> OperationPlan:
    """plan_random as 7ee1af5 wrote it: every input through the operation's own machine, then input_actions."""
    draw = draw_operation(spec, rng)
    timed = operation_inputs(draw, uuid, start_us, time_scale)
    machine = OtaMachine(streaming=spec.streaming, progress_step=spec.progress_step)
    actions: list[PlannedAction] = []
    after = OLD
    for i, (offset, inp) in enumerate(timed):
        events = machine.handle(inp)
        reboot_us = timed[i + 1][0] - offset if isinstance(inp, PoweredOff) else 0
        actions += input_actions(device, offset, inp, events, occurrences, OLD, NEW, reboot_us)
        if any(e.status is OtaStatus.SUCCESS and e.request_uuid == uuid for e in events):
            after = NEW
    end = max((a.offset_us + a.duration_us for a in actions), default=start_us)
    return OperationPlan(uuid, tuple(actions), end, after, draw.outcome)


EVERY_PATH = RandomLifecycle(
    outcomes=tuple((o, 1 / len(OUTCOMES)) for o in OUTCOMES),
    download_duration=Distribution("lognormal", median=20.0, sigma=0.5),
    deploy_duration=Distribution("uniform", low=5.0, high=20.0),
    reboot_duration=Distribution("exponential", mean=10.0),
    acknowledge_delay=Distribution("uniform", low=0.0, high=2.0),
    download_error_probability=0.4, error_codes=(("NetworkError", 0.5), ("IOError", 0.25), ("InternalError", 0.25)),
    double_update_probability=0.4, shutdown_delay=Distribution("uniform", low=0.0, high=70.0))
SPECS = {
    "every-path": EVERY_PATH,
    "streaming": RandomLifecycle(outcomes=EVERY_PATH.outcomes, streaming=True, progress_step=20,
                                 double_update_probability=0.4),
    "coarse-steps": RandomLifecycle(outcomes=EVERY_PATH.outcomes, progress_step=30, download_error_probability=0.5,
                                    download_duration=Distribution("uniform", low=1.0, high=60.0)),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_plan_random_plans_what_a_fresh_machine_plans(name: str) -> None:
    spec = SPECS[name]
    for device in range(60):
        remembered, fresh = device_rng(9, device), device_rng(9, device)
        books = KeyBook(), KeyBook()
        for n in range(4):  # consecutive operations: later ones mostly replay remembered transcripts
            uuid = request_uuid(remembered)
            assert uuid == request_uuid(fresh)
            start = n * 600_000_000
            got = plan_random(device, spec, remembered, uuid, start, 30.0, OLD, NEW, books[0])
            expected = plan_with_a_fresh_machine(device, spec, fresh, uuid, start, 30.0, books[1])
            assert got == expected
            assert repr(got) == repr(expected)  # the payloads' key order too


def test_uuids_are_replayed_by_role() -> None:
    transcripts = Transcripts()
    again = [UpdateRequested("a"), StartUpdate(), UpdateRequested("a")]  # the same request again: ignored
    other = [UpdateRequested("a"), StartUpdate(), UpdateRequested("b")]  # another one: refused, with ITS uuid
    assert transcripts.answers(again, False, 10) == (["a"], (((0, OtaStatus.ACKNOWLEDGED, 0, OtaStatusCode.NONE, ""),),
                                                            ((0, OtaStatus.DOWNLOADING, 0, OtaStatusCode.NONE, ""),),
                                                            ()))
    uuids, answers = transcripts.answers(other, False, 10)
    assert uuids == ["a", "b"]
    assert answers[2] == ((1, OtaStatus.FAILURE, 0, OtaStatusCode.UPDATE_ALREADY_IN_PROGRESS, ""),)
    assert len(transcripts) == 2
    uuids, replayed = transcripts.answers([UpdateRequested("x"), StartUpdate(), UpdateRequested("y")], False, 10)
    assert (uuids, replayed, len(transcripts)) == (["x", "y"], answers, 2)  # remembered, with the new uuids
    assert transcripts.answers([UpdateRequested("x"), StartUpdate(), CancelRequested("x")], True, 10)[1][1] == (
        (0, OtaStatus.DEPLOYING, 0, OtaStatusCode.NONE, ""),)  # streaming is part of the shape


def test_a_refused_sequence_is_not_remembered_and_the_memory_is_bounded() -> None:
    transcripts = Transcripts(max_entries=2)
    for _ in range(2):
        with pytest.raises(IllegalTransition):
            transcripts.answers([StartUpdate()], False, 10)
    assert len(transcripts) == 0
    for percent in (10, 20, 30):
        transcripts.answers([UpdateRequested("u"), StartUpdate(), DownloadProgress(percent)], False, 10)
    assert len(transcripts) == 1  # full at 2: forgotten, then the third learnt
