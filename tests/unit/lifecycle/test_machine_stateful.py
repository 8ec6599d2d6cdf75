"""Hypothesis RuleBasedStateMachine over OtaMachine: random inputs; legal ones advance, illegal ones raise
IllegalTransition naming phase and input and change nothing. Invariants: at most one running uuid, progress
monotone within a status (and within a download attempt), every operation ends in exactly one
Success/Failure."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from simulator.errors import IllegalTransition
from simulator.events import OtaStatus, OtaStatusCode
from simulator.lifecycle import inputs as I
from simulator.lifecycle.machine import OtaMachine
from simulator.lifecycle.states import RUNNING, TRANSITIONS, Phase

UUIDS = st.sampled_from(["a", "b", "c"])
CODES = st.sampled_from(list(OtaStatusCode))
PERCENT = st.integers(min_value=-5, max_value=105)

# One strategy per input kind (keys are TRANSITIONS' input kinds).
KINDS: dict[str, st.SearchStrategy[I.Input]] = {
    "UpdateRequested": st.builds(I.UpdateRequested, UUIDS),
    "CancelRequested": st.builds(I.CancelRequested, UUIDS),
    "Malformed": st.just(I.Malformed()),
    "StartUpdate": st.just(I.StartUpdate()),
    "DownloadProgress": st.builds(I.DownloadProgress, PERCENT),
    "DownloadAttemptFailed": st.builds(I.DownloadAttemptFailed, CODES),
    "BackoffElapsed": st.just(I.BackoffElapsed()),
    "DownloadDone": st.just(I.DownloadDone()),
    "DeployProgress": st.builds(I.DeployProgress, PERCENT),
    "DeployFailed": st.builds(I.DeployFailed, CODES),
    "PersistFailed": st.just(I.PersistFailed()),
    "DeployDone": st.just(I.DeployDone()),
    "RebootStarted": st.just(I.RebootStarted()),
    "RebootTick": st.just(I.RebootTick()),
    "RebootFailed": st.just(I.RebootFailed()),
    "PoweredOff": st.just(I.PoweredOff()),
    "BootedNew": st.just(I.BootedNew()),
    "BootedOld": st.just(I.BootedOld()),
}
INPUTS = st.one_of(*KINDS.values())


class MachineModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine = OtaMachine(progress_step=10)
        self.started: list[str] = []  # uuids acknowledged, in order
        self.finals: dict[int, int] = {}  # operation index -> final events seen
        self.last_progress: dict[str, int] = {}  # status -> last progress of the current attempt
        self.legal_steps = 0
        self.phases: set[Phase] = set()

    @rule(inp=INPUTS)
    def step(self, inp: I.Input) -> None:
        before = (self.machine.phase, self.machine.uuid, self.machine.failed_attempts)
        in_table = (self.machine.phase, I.input_kind(inp)) in TRANSITIONS
        try:
            events = self.machine.handle(inp)
        except IllegalTransition as exc:
            assert exc.state == str(before[0])
            assert type(inp).__name__ in exc.event
            assert (self.machine.phase, self.machine.uuid, self.machine.failed_attempts) == before
            return
        assert in_table, f"{inp!r} accepted in {before[0]} but absent from TRANSITIONS"
        self.legal_steps += 1
        self.phases.add(self.machine.phase)
        for event in events:
            if event.status is OtaStatus.ACKNOWLEDGED:
                assert before[0] is Phase.IDLE
                self.started.append(event.request_uuid)
                self.finals[len(self.started) - 1] = 0
                self.last_progress.clear()
            elif event.status is OtaStatus.ERROR:
                self.last_progress.pop(str(OtaStatus.DOWNLOADING), None)  # a new attempt starts from 0
            elif event.status in (OtaStatus.DOWNLOADING, OtaStatus.DEPLOYING):
                key = str(event.status)
                assert event.progress >= self.last_progress.get(key, 0), (key, event.progress)
                assert 0 <= event.progress <= 100
                self.last_progress[key] = event.progress
            if event.status in (OtaStatus.SUCCESS, OtaStatus.FAILURE) and before[1] is not None \
                    and event.request_uuid == before[1] and self.machine.uuid is None:
                self.finals[len(self.started) - 1] += 1

    @rule(data=st.data())
    def table_step(self, data: st.DataObject) -> None:
        """An input whose kind the table accepts in the current phase (values may still be refused), so
        runs reach deep phases (reboot, rollback) instead of bouncing off Idle."""
        kinds = sorted(k for k in KINDS if (self.machine.phase, k) in TRANSITIONS)
        inp = data.draw(st.sampled_from(kinds).flatmap(lambda k: KINDS[k]))
        self.step(inp)

    @invariant()
    def one_running_uuid(self) -> None:
        assert (self.machine.uuid is None) == (self.machine.phase is Phase.IDLE)
        if self.machine.phase in RUNNING or self.machine.phase is Phase.OFFLINE:
            assert self.machine.uuid == self.started[-1]

    @invariant()
    def operations_end_once(self) -> None:
        for index, count in self.finals.items():
            ended = index < len(self.started) - 1 or self.machine.phase is Phase.IDLE
            assert count == (1 if ended else 0), (index, count, self.machine.phase)


TestMachine = MachineModel.TestCase
TestMachine.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)
