"""Workers receive the run's spec as data: FLEETSIM_* variables and flags are resolved once, by the master.

Before the spine, each worker re-read the scenario file without the environment: with FLEETSIM_DEVICES=7 the
master planned 7 devices and every worker the file's 6, and partitions and accounting diverged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, summary_of


def test_master_and_workers_play_the_plan_of_the_environment(tiny_scenario: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = dict(os.environ, PYTHONUNBUFFERED="1", FLEETSIM_DEVICES="7")  # the file says 6
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(tiny_scenario), "--processes", "2",
                           "--results", str(results), "--state-dir", str(tmp_path / "state"), "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = summary_of(only_run_dir(results))
    extra = summary["extra"]
    assert isinstance(extra, dict)
    workers = extra["workers"]
    assert [w["index"] for w in workers] == [0, 1]
    assert {w["plan_digest"] for w in workers} == {extra["plan_digest"]}  # one plan, built from one spec
    assert [w["devices"] for w in workers] == [7, 7]
    assert extra["fleet"]["devices"] == 7 and extra["fleet"]["online"] == 7  # the union of the partitions
    events = summary["events"]
    assert isinstance(events, dict) and events["planned"] == events["sent"] == events["delivered"] > 0
