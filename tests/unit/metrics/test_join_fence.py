"""The run fence and `invalid_join` (issue 14): a join that pairs sends with arrivals from before them -- an
earlier run's arrival log, clocks that disagree -- is verdict `invalid_join` (exit 4), never ok nor a generator
verdict; a clock offset measured at the fence is tolerated. Also the collector's run mark and the trigger
observers' fence, driven without a broker."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import bson

from simulator.backend.collector import Collector, CollectorConfig
from simulator.clock import VirtualClock
from simulator.generator.finish import finish_run
from simulator.metrics.health import GENERATOR_SATURATED, INVALID_JOIN, verdict
from simulator.metrics.join_check import check_join
from simulator.metrics.run_summary import RunSummary
from simulator.observers.fence import RunFence
from simulator.observers.trigger_arrivals import ArrivalBook
from simulator.outputs.exit_status import EXIT_INCOMPLETE, exit_status
from simulator.outputs.summary import read_summary
from simulator.records import ArrivalRecord
from simulator.scenario.model import Scenario
from simulator.target_info import TargetInfo
from tests.unit.outputs.fake_run import make_run

OTA = "io.edgehog.devicemanager.OTAEvent"


class ListObserver:
    """An observer whose arrival log is given (what a collector would serve after the fence)."""

    name = "list"

    def __init__(self, arrivals: list[ArrivalRecord], fence: RunFence) -> None:
        self._arrivals, self._fence = arrivals, fence

    def start(self) -> None:
        return None

    @property
    def fence(self) -> RunFence | None:
        return self._fence

    def arrival_count(self) -> int:
        return len(self._arrivals)

    def arrivals(self, since: int = 0) -> list[ArrivalRecord]:
        return self._arrivals[since:]

    def stop(self) -> None:
        return None


def _finish(tmp_path: Path, shift_s: float, fence: RunFence) -> tuple[RunSummary, Path]:
    run = make_run(lose_last=False)
    arrivals = [dataclasses.replace(a, arrival=a.arrival + shift_s) for a in run.arrivals]
    target = TargetInfo(kind="embedded", realm="fleetsim", pairing_url="https://127.0.0.1:1", agent_jwt="x",
                        ca_file="ca.pem")
    finished = finish_run(scenario=Scenario(name="unit", duration=4.0), plan=None, target=target,
                          recorder=run.recorder, observer=ListObserver(arrivals, fence),
                          started_at=run.recorder.start, ended_at=run.end, results_root=tmp_path / "results",
                          health=run.health)
    return finished.summary, finished.run_dir


def test_a_join_with_an_earlier_runs_arrivals_is_invalid_join_and_exits_4(tmp_path: Path) -> None:
    # The same keys, seen 108 s before they were sent: the previous run of the same seed.
    summary, run_dir = _finish(tmp_path, -108.0, RunFence(at=0.0, offset_s=0.0002, uncertainty_s=0.0003))
    assert summary.verdict == INVALID_JOIN
    join = summary.join
    assert join is not None and join.worst_ms is not None
    assert join.impossible == join.pairs > 0 and join.worst_ms < -107_000
    assert "arrived before they were sent" in summary.verdict_reasons[0]
    assert summary.latency_trustworthy is False
    status = exit_status(summary, partial=False)
    assert status.code == EXIT_INCOMPLETE and status.reasons[0].startswith("verdict invalid_join:")
    on_disk = read_summary(run_dir)
    assert on_disk.verdict == INVALID_JOIN and on_disk.join == summary.join
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["join"]["fence"] == "" and doc["join"]["impossible"] == join.impossible


def test_a_measured_clock_offset_is_not_an_invalid_join(tmp_path: Path) -> None:
    # The observer's clock is 2 s behind, and the fence measured it: arrivals 2 s "before" sends are fine.
    summary, _ = _finish(tmp_path, -2.0 + 0.006, RunFence(at=0.0, offset_s=-2.0, uncertainty_s=0.0005,
                                                          kind="collector cursor"))
    assert summary.verdict != INVALID_JOIN
    assert summary.join is not None and summary.join.impossible == 0 and summary.join.pairs > 0
    assert summary.join.fence == "collector cursor"
    # ...but 10 ms beyond what was measured is impossible.
    bad = check_join([(("d", "u", "Success", 0, 0), 100.0, 100.0 - 2.0 - 0.010)], offset_s=-2.0,
                     uncertainty_s=0.0005)
    assert bad.impossible == 1 and bad.examples == (("d", "u", "Success", 0, 0),)


def test_invalid_join_outranks_a_saturated_generator() -> None:
    judged = verdict(send_lag_p99_ms=500.0, cpu_pct=99.0, loop_lag_p99_ms=1.0, invalid_join="3 of 9 joined")
    assert judged.status == INVALID_JOIN and judged.saturated and judged.reasons[0] == "3 of 9 joined"
    assert verdict(send_lag_p99_ms=500.0, cpu_pct=99.0, loop_lag_p99_ms=1.0).status == GENERATOR_SATURATED


def _payload(status: str) -> bytes:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    value = {"requestUUID": "u1", "status": status, "statusProgress": 0, "statusCode": "", "message": ""}
    data: bytes = bson.dumps({"v": value, "t": when})
    return data


def test_the_collector_mark_fences_rows_and_numbers_occurrences_afresh() -> None:
    realm, dev = "test", "AAECAwQFBgcICQoLDA0ODw"
    clock = VirtualClock(start=50.0)
    c = Collector(CollectorConfig("127.0.0.1", 1, "ca.pem", "c.pem", "k.pem", realm), clock=clock)
    c.handle_message(f"{realm}/{dev}", 2, f"{OTA}:0:1".encode())
    c.handle_message(f"{realm}/{dev}/control/emptyCache", 2, b"1")
    for _ in range(2):  # two runs of the same seed: the same events
        mark = c.mark("run")
        assert mark.at == clock.wall()
        for status in ("Acknowledged", "Rebooting", "Rebooting", "Success"):
            clock.advance(1.0)
            c.handle_message(f"{realm}/{dev}/{OTA}/event", 2, _payload(status))
    assert mark.cursor == 4
    keys = [r.key for r in c.arrivals(mark.cursor)]
    assert keys == [(dev, "u1", "Acknowledged", 0, 0), (dev, "u1", "Rebooting", 0, 0),
                    (dev, "u1", "Rebooting", 0, 1), (dev, "u1", "Success", 0, 0)]
    assert [m["cursor"] for m in c.stats()["marks"]] == [0, 4]


def test_a_trigger_observer_ignores_events_stamped_before_its_mark() -> None:
    book = ArrivalBook()
    value = {"requestUUID": "u1", "status": "Acknowledged", "statusProgress": 0}
    book.fence(1_000_000)
    assert book.add(device_id="d", interface=OTA, path="/event", value=value, t_ms=999_999, arrival=1001.0) is None
    kept = book.add(device_id="d", interface=OTA, path="/event", value=value, t_ms=1_000_000, arrival=1001.0)
    assert kept is not None and kept.key == ("d", "u1", "Acknowledged", 0, 0)  # numbered from the fence on
    assert book.ignored["before_run"] == 1 and book.count() == 1
