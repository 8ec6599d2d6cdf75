"""Operator truth at the end of a run: an observer that fails when the end reads it (the embedded backend gone)
never loses the run -- the results are written from what was read, partial, with the reason -- and a plan whose
count a second Ctrl-C stopped is written with not_attempted null and a note, never a number made up."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.errors import UsageError
from simulator.generator.finish import finish_run
from simulator.observers.fence import RunFence
from simulator.outputs.exit_status import EXIT_INTERRUPTED, exit_status, status_lines
from simulator.outputs.summary import read_summary
from simulator.plan import build_plan
from simulator.records import ArrivalRecord
from simulator.scenario.model import Scenario
from simulator.target_info import TargetInfo
from tests.unit.outputs.fake_run import make_run
from tests.unit.plan.test_fleet_plan import fixed_schedule, scenario

TARGET = TargetInfo(kind="embedded", realm="fleetsim", pairing_url="https://127.0.0.1:1", agent_jwt="x",
                    ca_file="ca.pem")
NOT_COUNTED = "the plan after the stop was not counted (second Ctrl-C)"


class GoneObserver:
    """A collector that serves its first page of arrivals, then is gone (connection refused)."""

    name = "embedded-collector"

    def __init__(self, arrivals: list[ArrivalRecord], served: int) -> None:
        self._arrivals, self._served, self.reads = arrivals, served, 0

    def start(self) -> None:
        return None

    @property
    def fence(self) -> RunFence | None:
        return RunFence(at=0.0, offset_s=0.0, uncertainty_s=0.0005, kind="collector cursor")

    def arrival_count(self) -> int:
        raise UsageError("collector at http://127.0.0.1:9 unreachable: [Errno 111] Connection refused")

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        self.reads += 1
        if self.reads > 1:
            raise UsageError("collector at http://127.0.0.1:9 unreachable: [Errno 111] Connection refused")
        return self._arrivals[since:self._served]


def test_a_collector_gone_at_the_end_still_writes_the_results_partial_with_the_reason(tmp_path: Path) -> None:
    run = make_run(lose_last=False)
    served = len(run.arrivals) // 2
    observer = GoneObserver(run.arrivals, served)
    finished = finish_run(scenario=Scenario(name="unit", duration=4.0), plan=None, target=TARGET,
                          recorder=run.recorder, observer=observer, started_at=run.recorder.start,
                          ended_at=run.end, results_root=tmp_path / "results", health=run.health)
    assert observer.reads == 2  # the first page read, then the collector refused
    assert finished.partial is True
    assert finished.observer_lost.startswith("collector unreachable at the end (collector at http://127.0.0.1:9 "
                                             "unreachable: [Errno 111] Connection refused): arrivals after ")
    doc = json.loads((finished.run_dir / "summary.json").read_text())
    assert doc["partial"] is True
    assert finished.observer_lost in doc["extra"]["reason"]
    end = doc["extra"]["observer_end"]
    assert end["observer"] == "embedded-collector" and end["arrivals_read_until"] is not None
    # What was read is joined; the rest of the acked events are not read (counted as acked_not_arrived).
    events = doc["events"]
    assert events["delivered"] == served
    assert events["lost"] == len(run.arrivals) - served
    status = exit_status(finished.summary, partial=finished.partial, interrupted=False,
                         notes=(finished.observer_lost,))
    assert status.code == EXIT_INTERRUPTED
    last = status_lines(finished.summary, status)[-1]
    assert last == f"exit 130: partial results; {finished.observer_lost}"


def test_a_plan_not_counted_is_written_null_with_the_note_and_never_generated(tmp_path: Path) -> None:
    run = make_run(lose_last=False)
    plan = build_plan(scenario(devices=6), schedule_fn=fixed_schedule)
    finished = finish_run(scenario=Scenario(name="unit", duration=4.0), plan=plan, target=TARGET,
                          recorder=run.recorder, observer=None, started_at=run.recorder.start, ended_at=run.end,
                          results_root=tmp_path / "results", health=run.health, partial=True,
                          reason="interrupted (Ctrl-C)", plan_uncounted=NOT_COUNTED)
    assert plan.cursor.steps_done == 0  # nothing of the plan generated to write the results
    doc = json.loads((finished.run_dir / "summary.json").read_text())
    assert doc["extra"]["not_attempted"] is None
    assert doc["extra"]["not_attempted_reason"] == NOT_COUNTED
    assert doc["extra"]["plan"] is None  # the plan's totals (operations, dropped, in flight) not counted either
    back = read_summary(finished.run_dir)  # `fleetsim report`, compare, baseline read it back typed
    assert back.extra is not None and back.extra.not_attempted is None
    status = exit_status(finished.summary, partial=True, notes=(NOT_COUNTED,))
    assert status_lines(finished.summary, status)[-1] == f"exit 130: interrupted: partial results; {NOT_COUNTED}"
