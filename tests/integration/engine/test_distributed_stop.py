"""A distributed run interrupted long before its plan's end (issue 14): each worker sends its final from the part
of the plan it generated (it used to generate the rest first, on the greenlet that answers the master, and was
marked missing on a long plan), the master agrees with every worker's plan, and what the stop left unplayed is
still counted: not_attempted over the whole plan, the whole plan's cut."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from simulator.run.plans import bound_plan, plan_for
from simulator.scenario.loader import load_scenario
from tests.integration.engine.conftest import only_run_dir, summary_of

# 2 h of plan at 2 operations/s (14,400 operations, a few seconds of CPU to generate): interrupted after a few
# seconds of play, no worker can have reached its end by itself.
LONG = """\
name: long-distributed
seed: 5
fleet: {devices: 20}
time_scale: 1
duration: 2h
graceful_stop: 10s
arrival: {model: constant, rate: 2}
lifecycle:
  random:
    outcomes: {success: 1.0}
    download_duration: 3s
    deploy_duration: 2s
    reboot_duration: 2s
"""


def test_an_interrupted_distributed_run_counts_the_rest_and_trusts_its_workers(tiny_scenario: Path,
                                                                               tmp_path: Path) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "run", str(scenario), "--processes", "2",
                             "--results", str(results), "--state-dir", str(tmp_path / "state")], cwd=tmp_path,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # the live progress line ("[  5s, 7227s left]"): the plan has played a few seconds
        played = re.search(r"\[\s*(\d+)s, \d+s left\]", line)
        if (played and int(played.group(1)) >= 5) or time.monotonic() > deadline:
            break
    assert time.monotonic() < deadline, "the plan never started playing"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, out + err
    summary = summary_of(only_run_dir(results))
    extra = summary["extra"]
    assert isinstance(extra, dict)
    workers = extra["workers"]
    assert [w["plan_whole"] for w in workers] == [False, False]  # each stopped where it was
    assert all(0 < w["plan_steps"] < 14_400 for w in workers)
    assert extra["reason"] == "interrupted (Ctrl-C)"  # no "played another plan than the master's"
    sc = load_scenario(str(scenario))
    totals = bound_plan(plan_for(sc), sc.duration, sc.graceful_stop).plan.totals
    events = summary["events"]
    assert isinstance(events, dict) and events["planned"] == totals.planned_events
    assert extra["not_attempted"] == totals.planned_events - events["offered"] > 0
    assert extra["cut"]["operations"] == totals.cut_operations
    assert extra["plan_digest"] == totals.digest
