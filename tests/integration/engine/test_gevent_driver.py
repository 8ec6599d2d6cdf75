"""The plain gevent driver plays the same events as the Locust driver through the same `execute` tail."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of

GEVENT_RUN = """\
from gevent import monkey

monkey.patch_all()

import sys
from pathlib import Path

from simulator.run.execute import execute
from simulator.run.gevent_driver import GeventDriver
from simulator.run.spec import RunSettings, RunSpec
from simulator.scenario.loader import load_scenario

scenario_path, results, state = sys.argv[1:4]
spec = RunSpec(scenario=load_scenario(scenario_path),
               settings=RunSettings(results_root=Path(results), state_dir=Path(state), quiet=True,
                                    engine="gevent driver"))
sys.exit(execute(spec, GeventDriver(), sys.stdout).exit_code)
"""


def _sent_keys(run_dir: Path) -> list[tuple[str, ...]]:
    with (run_dir / "events.sent.csv").open() as f:
        rows = list(csv.reader(f))[1:]
    return sorted(tuple(row[:5]) for row in rows)


def test_gevent_driver_plays_what_the_locust_driver_plays(tiny_scenario: Path, tmp_path: Path) -> None:
    locust_results, gevent_results = tmp_path / "locust", tmp_path / "gevent"
    proc = run_fleetsim(["run", str(tiny_scenario), "--results", str(locust_results), "--state-dir",
                         str(tmp_path / "state"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(GEVENT_RUN), str(tiny_scenario),
                           str(gevent_results), str(tmp_path / "state")], cwd=tmp_path,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    locust_dir, gevent_dir = only_run_dir(locust_results), only_run_dir(gevent_results)
    summary = summary_of(gevent_dir)
    events = summary["events"]
    assert isinstance(events, dict) and events["planned"] == events["delivered"] > 0 and events["lost"] == 0
    assert summary["extra"]["engine"] == "gevent driver"  # type: ignore[index]
    assert _sent_keys(gevent_dir) == _sent_keys(locust_dir)  # same plan, same events, key by key
