"""`fleetsim run` end to end on the embedded backend: every result file, every summary key, nothing lost."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of

SUMMARY_KEYS = {
    "schema_version", "scenario", "seed", "started_at", "duration_s", "devices", "transport", "target", "events",
    "rate", "latency_ms", "ota", "generator", "verdict",
}


def test_run_writes_every_file_and_loses_nothing(tiny_scenario: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = run_fleetsim(["run", str(tiny_scenario), "--results", str(results), "--state-dir",
                         str(tmp_path / "state"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(results)
    for name in ("summary.json", "timeseries.csv", "latency.hlog", "events.sent.csv", "events.arrivals.csv",
                 "report.html", "junit.xml"):
        assert (run_dir / name).is_file(), name
    summary = summary_of(run_dir)
    assert set(summary) >= SUMMARY_KEYS
    events = summary["events"]
    assert isinstance(events, dict)
    for key in ("planned", "sent", "acked", "delivered", "lost", "duplicated", "reordered"):
        assert key in events
    assert events["planned"] == events["sent"] == events["acked"] == events["delivered"] > 0
    assert events["lost"] == 0 and events["duplicated"] == 0
    latency = summary["latency_ms"]
    assert isinstance(latency, dict)
    for path in ("ack", "e2e", "onboarding"):
        assert path in latency
    for key in ("p50", "p90", "p99", "p999", "max", "count"):
        assert key in latency["ack"]
    ota = summary["ota"]
    assert isinstance(ota, dict) and ota["operations"] == 6 and ota["stuck"] == 0
    assert ota["success"] + ota["failure"] == 6
    with (run_dir / "timeseries.csv").open() as f:
        header = next(csv.reader(f))
    for column in ("offered", "acked", "delivered", "lost", "devices_online"):
        assert column in header
    assert "fleetsim tiny" in proc.stdout and "results:" in proc.stdout
