"""The lifecycle machine's answers to a whole operation's inputs, remembered by input sequence (issue 16).

OtaMachine is pure (simulator.lifecycle.machine): what a fresh machine publishes for a sequence of inputs depends
only on `streaming`, `progress_step` and the inputs -- and on their request uuids only through which of them are
equal, since the machine compares uuids and copies them into its events, nothing more. So the planner asks a
machine once per distinct sequence, with each uuid written as its role (0 for the first uuid of the sequence,
1 for the next different one), and answers every later operation of that shape from the transcript with the
operation's own uuids. Few shapes recur: 1 to 150 distinct sequences in 3,000 operations of each lifecycle of
the shipped scenarios and of tests/unit/plan/test_plan_pinned.py's every-path mix (operation_inputs over
draw_operation of 200 devices' streams, 2026-12-07). A machine costs ~35 us per operation of the campaign
benchmark's shape, the key ~5 us (time.process_time over 3,000 operations, best of 7, gevent-patched, this VM).

A sequence the machine refuses (IllegalTransition, an assertion) is not remembered: it raises every time.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.events import OtaStatus, OtaStatusCode
from simulator.lifecycle.inputs import CancelRequested, Input, UpdateRequested
from simulator.lifecycle.machine import OtaMachine

__all__ = ["MAX_TRANSCRIPTS", "EventRow", "Transcripts"]

# Distinct sequences kept (then forgotten all at once, and learnt again): 27x the most seen above; an entry
# holds one row per event, ~30 rows (~10 KB).
MAX_TRANSCRIPTS = 4096

# One OTAEvent of a transcript: (uuid role, status, statusProgress, statusCode, message).
EventRow = tuple[int, OtaStatus, int, OtaStatusCode, str]
# The machine's events for each input of the sequence, in input order.
Answers = tuple[tuple[EventRow, ...], ...]
_Key = tuple[bool, int, tuple[object, ...]]


class Transcripts:
    """The machine's answers by (streaming, progress_step, input sequence with uuids as roles)."""

    def __init__(self, max_entries: int = MAX_TRANSCRIPTS) -> None:
        self.max_entries = max_entries
        self._answers: dict[_Key, Answers] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def answers(self, inputs: Sequence[Input], streaming: bool, progress_step: int) -> tuple[list[str], Answers]:
        """(the sequence's distinct uuids in order of appearance, the events a fresh OtaMachine(streaming,
        progress_step) publishes for each input, their uuids as indexes into that list)."""
        uuids: list[str] = []
        roles: dict[str, int] = {}
        shape: list[object] = []
        for inp in inputs:
            if isinstance(inp, (UpdateRequested, CancelRequested)):
                role = roles.get(inp.uuid)
                if role is None:
                    role = roles[inp.uuid] = len(uuids)
                    uuids.append(inp.uuid)
                shape.append((type(inp), role))
            else:
                shape.append(inp)  # frozen dataclasses: equal and hashed by type and fields
        key = (streaming, progress_step, tuple(shape))
        answers = self._answers.get(key)
        if answers is None:
            answers = _ask(inputs, streaming, progress_step, roles)
            if len(self._answers) >= self.max_entries:
                self._answers.clear()
            self._answers[key] = answers
        return uuids, answers


def _ask(inputs: Sequence[Input], streaming: bool, progress_step: int, roles: dict[str, int]) -> Answers:
    machine = OtaMachine(streaming=streaming, progress_step=progress_step)
    answers: list[tuple[EventRow, ...]] = []
    for inp in inputs:
        events = machine.handle(inp)
        # Every event carries a uuid the machine was given (the operation's or a request's).
        answers.append(tuple((roles[e.request_uuid], e.status, e.progress, e.code, e.message) for e in events))
    return tuple(answers)
