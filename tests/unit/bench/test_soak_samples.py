"""bench/soak_memory.py keeps what an interrupted soak sampled: each sample appended as a JSON line when it is
taken (read back by --report-only, a line cut short by a crash skipped), and a Ctrl-C that waits for the run's
results, a second Ctrl-C passed on to the run (its own second Ctrl-C: it writes at once); --stall-collector-s
reads the stop's effect from the run's timeseries.csv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import soak_memory
from bench.soak_memory import (
    SAMPLES_JSON,
    SAMPLES_JSONL,
    CollectorStall,
    read_samples,
    stall_effect,
    wait_for_run,
)


def test_an_interrupted_soak_is_read_from_its_json_lines_and_a_finished_one_from_its_json(tmp_path: Path) -> None:
    rows = [{"t": float(i), "events": i * 1000, "generator": 50 << 20} for i in range(3)]
    torn = json.dumps({"t": 3.0, "events": 3000})[:9]  # the process died in the middle of a write
    (tmp_path / SAMPLES_JSONL).write_text("".join(json.dumps(r) + "\n" for r in rows) + torn)
    assert read_samples(tmp_path) == rows
    (tmp_path / SAMPLES_JSON).write_text(json.dumps([*rows, {"t": 3.0, "events": 3000, "generator": 1}]))
    assert len(read_samples(tmp_path)) == 4


# A stand-in for `fleetsim run`: it counts the SIGINTs it gets and exits with their number at the second.
CHILD = """\
import signal, sys, time
got = []
def on_sigint(*_):
    got.append(1)
    if len(got) == 2:
        sys.exit(len(got))
signal.signal(signal.SIGINT, on_sigint)
print("ready", flush=True)
while True:
    time.sleep(0.01)  # sleep-ok: a stand-in process waiting for its signals
"""


def test_ctrl_c_stops_the_run_once_and_a_second_one_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soak_memory, "SAMPLE_S", 0.01)
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    taken: list[int] = []

    def sample() -> None:
        taken.append(len(taken))
        if len(taken) == 3:
            raise KeyboardInterrupt  # the operator's second Ctrl-C, while the script waits for the run

    try:
        wait_for_run(child, sample)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.wait() == 2  # the first SIGINT stopped it gracefully, the second made it write at once
    assert len(taken) >= 3  # it went on sampling while it waited


def test_a_collector_stall_is_placed_in_the_runs_seconds_with_its_backlog_and_drain(tmp_path: Path) -> None:
    run = tmp_path / "results" / "20261207T000000Z-soak"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"started_at_epoch": 1000.0}))
    # 100 events/s sent and acked throughout; none delivered in seconds 5-10 (the stop), 300/s after it.
    delivered = [100] * 5 + [0] * 6 + [300, 300, 300] + [100] * 6
    lines = ["second,sent,acked,delivered,ack_p99_ms"]
    lines += [f"{i},100,100,{d},{40 if i == 7 else 4}" for i, d in enumerate(delivered)]
    (run / "timeseries.csv").write_text("\n".join(lines) + "\n")
    stall = CollectorStall(pid=0, seconds=6.0)
    stall.at, stall.until = 1005.3, 1011.3
    effect = stall_effect(stall, tmp_path / "results")
    assert (effect["stop_second"], effect["resume_second"]) == (5, 11)
    assert effect["sent_in_stop"] == effect["acked_in_stop"] == 600
    assert effect["ack_p99_ms_max_near_stop"] == 40 and effect["ack_p99_ms_run_median"] == 4
    assert effect["backlog_before"] == 0 and effect["backlog_at_resume"] == 400  # 600 behind, 200 caught up in 11
    assert effect["drained_s_after_resume"] == 2  # 400 -> 200 -> 0 at second 13
