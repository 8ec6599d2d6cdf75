"""A master with two worker processes plays exactly the single-process plan for the same seed (issue 5)."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of


def _sent_keys(run_dir: Path) -> list[tuple[str, ...]]:
    with (run_dir / "events.sent.csv").open() as f:
        rows = list(csv.reader(f))[1:]
    return sorted(tuple(row[:5]) for row in rows)


def test_master_and_two_workers_equal_one_process(tiny_scenario: Path, tmp_path: Path) -> None:
    keys = {}
    for processes in (1, 2):
        results = tmp_path / f"results-{processes}"
        proc = run_fleetsim(["run", str(tiny_scenario), "--processes", str(processes), "--results", str(results),
                             "--state-dir", str(tmp_path / "state"), "--quiet"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run_dir = only_run_dir(results)
        summary = summary_of(run_dir)
        events = summary["events"]
        assert isinstance(events, dict) and events["lost"] == 0
        keys[processes] = _sent_keys(run_dir)
    assert keys[1] and keys[1] == keys[2]  # same events, device by device, uuid by uuid, occurrence by occurrence
