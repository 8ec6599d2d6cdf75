"""Backend-driven devices complete a campaign sent by the embedded campaign driver (issue 4 done-when)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of

CAMPAIGN = """\
name: tiny-campaign
seed: 9
fleet: {devices: 8, target_version: 1.1.0}
time_scale: 120
duration: 20s
mode: campaign
arrival: {model: burst, count: 1, start: 0s, phase: aligned}
campaign: {max_in_progress: 3, request_timeout: 5m, request_retries: 3, max_failure_percentage: 100}
lifecycle:
  random:
    outcomes: {success: 0.75, rollback: 0.25}
    download_duration: 60s
    deploy_duration: 30s
    reboot_duration: 30s
"""


def test_campaign_completes_on_backend_driven_devices(tiny_scenario: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "campaign.yaml"
    scenario.write_text(CAMPAIGN)
    proc = run_fleetsim(["run", str(scenario), "--results", str(tmp_path / "results"), "--state-dir",
                         str(tmp_path / "state"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = summary_of(only_run_dir(tmp_path / "results"))
    campaign = summary["extra"]["campaign"]  # type: ignore[index]
    assert campaign["finished"] is True and campaign["targets"] == 8, campaign
    assert campaign["stuck_in_progress"] == []
    states = campaign["operations_by_state"]
    assert sum(states.values()) == 8 and set(states) <= {"success", "failure"}, states
    ota = summary["ota"]
    assert isinstance(ota, dict) and ota["operations"] == 8 and ota["stuck"] == 0
    events = summary["events"]
    assert isinstance(events, dict) and events["lost"] == 0 and events["sent"] == events["delivered"] > 8
    # Issue 13: campaign metrics from the devices' side and the driver's record compared with it.
    metrics = summary["extra"]["campaign_metrics"]  # type: ignore[index]
    assert metrics["driver"] == "embedded" and metrics["max_in_progress"] == 3
    assert metrics["operations"] == 8 and metrics["answered"] == 8
    assert metrics["request_to_ack"]["count"] == 8 and metrics["request_to_final"]["count"] == 8
    assert 1 <= metrics["peak_in_flight"] <= 3 and metrics["over_limit"] is False
    assert metrics["timeouts"] == 0 and metrics["retries_seen"] == 0
    convergence = metrics["convergence"]
    assert (convergence["checked"], convergence["converged"], convergence["diverged_count"]) == (8, 8, 0)
    assert convergence["never_reached"] == 0 and convergence["unknown_to_backend"] == 0
    assert "state convergence: 8/8 converged, 0 diverged" in proc.stdout


def test_campaign_metrics_gather_every_workers_devices(tiny_scenario: Path, tmp_path: Path) -> None:
    """With --processes 2 each worker holds half the devices; their traces reach the master's summary."""
    scenario = tmp_path / "campaign.yaml"
    scenario.write_text(CAMPAIGN)
    proc = run_fleetsim(["run", str(scenario), "--results", str(tmp_path / "results"), "--state-dir",
                         str(tmp_path / "state"), "--processes", "2", "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = summary_of(only_run_dir(tmp_path / "results"))["extra"]["campaign_metrics"]  # type: ignore[index]
    assert metrics["operations"] == 8 and metrics["request_to_ack"]["count"] == 8
    assert metrics["convergence"]["converged"] == 8 and metrics["convergence"]["unknown_to_backend"] == 0
    # Issue 14: the master spooled the operations on disk for the report, and removed the file once it was read.
    assert not (tmp_path / "results" / ".spool").exists()
