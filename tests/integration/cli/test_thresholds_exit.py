"""Exit codes that say why, through the real CLI against the embedded backend (issue 7, issue 15 item 2):
`fleetsim run` exits 1 on a breach, its last lines name it (metric, observed, required) with the verdict, and
junit.xml names it too; a fault's losses count against the fault, so error-storm's gate means what it says;
plain `locust -f locustfile.py` exits by the same rules."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from simulator.generator.backend_process import BackendProcess
from tests.conftest import require_service
from tests.integration.engine.conftest import only_run_dir, run_fleetsim, run_scenario_text, summary_of

REPO = Path(__file__).resolve().parents[3]

SCENARIO = """\
name: gate
seed: 3
fleet: {devices: 3}
time_scale: 600
duration: 3s
arrival: {model: constant, rate: 3, count: 3}
lifecycle:
  random: {outcomes: {success: 1.0}, download_duration: 60s, deploy_duration: 60s, reboot_duration: 60s}
thresholds:
  ack_latency_p99_ms: "< 0.001"
  ota.stuck: ">= 0"
"""


def test_breached_threshold_exits_1_and_junit_names_it(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    proc, results = run_scenario_text(tmp_path, "gate", SCENARIO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    suite = ET.parse(only_run_dir(results) / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    assert cases["ota.stuck >= 0"] is None
    failure = cases["ack_latency_p99_ms < 0.001"]
    assert failure is not None
    message = failure.get("message") or ""
    assert message.startswith("ack_latency_p99_ms: observed ") and message.endswith(", required < 0.001")
    last = proc.stdout.rstrip().splitlines()[-4:]
    assert last[0] == "thresholds: 1/2 passed, 1 breached", proc.stdout
    assert last[1].startswith("  BREACHED ack_latency_p99_ms: observed ") and last[1].endswith(" ms, required < 0.001")
    assert last[2].startswith("verdict: ") and last[3] == "exit 1: thresholds breached"


FAULTED = """\
name: faulted
seed: 5
fleet: {devices: 6}
time_scale: 60
duration: 6s
arrival: {model: constant, rate: 6, count: 6}
lifecycle:  # Downloading progress every 0.5 s of wall time, while half the fleet is offline for 2 s
  random: {outcomes: {success: 1.0}, download_duration: 5m, deploy_duration: 30s, reboot_duration: 30s}
faults:
  - {kind: disconnect, at: 2s, duration: 2s, devices: 0.5}
thresholds:
  lost_outside_faults: "== 0"
  errors_outside_faults: "== 0"
"""


def test_losses_inside_an_injected_fault_are_the_faults(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    proc, results = run_scenario_text(tmp_path, "faulted", FAULTED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = summary_of(only_run_dir(results))
    events, extra, verdict = summary["events"], summary["extra"], summary["verdict"]
    assert isinstance(events, dict) and isinstance(extra, dict)
    (fault,) = extra["faults"]
    caused = fault["caused"]
    assert caused["lost"] > 0 and caused["lost"] == events["lost"], summary  # the disconnect lost them all
    assert events["lost_outside_faults"] == 0 and events["errors_outside_faults"] == 0
    # Not blamed on the backend (a loaded machine may still make it generator_saturated: not this test's point)
    assert verdict not in ("lost_events", "backend_errors"), summary["verdict_reasons"]
    assert "caused" in proc.stdout and "not the backend" in proc.stdout


def test_plain_locust_exits_1_on_a_breached_threshold(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    scenario = tmp_path / "gate.yaml"
    scenario.write_text(SCENARIO)
    with BackendProcess(tmp_path / "backend") as backend:
        assert backend.info is not None
        env = dict(os.environ, FLEETSIM_BACKEND_INFO=str(tmp_path / "backend" / "backend.json"),
                   FLEETSIM_SCENARIO=str(scenario), FLEETSIM_STATE_DIR=str(tmp_path / "gen"))
        proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless",
                               "--only-summary"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "  BREACHED ack_latency_p99_ms: observed " in proc.stderr, proc.stderr
    assert "exit 1: thresholds breached" in proc.stderr


# The gate's fleet and lifecycle, with thresholds on what only an observer can see and what it cannot.
NO_OBSERVER = SCENARIO.replace("name: gate", "name: blind").split("thresholds:")[0] + """\
thresholds:
  lost: "== 0"
  ack_latency_p99_ms: "< 10000"
"""


def test_without_an_observer_lost_is_unknown_and_named_not_a_failure(tmp_path: Path) -> None:
    """A target file with no observer: `lost` has no value. It is `unknown` with the reason, in the last lines,
    and does not fail the run (on_missing: skip, the default); it did fail every such run before."""
    require_service("mosquitto", binary="mosquitto")
    from simulator.backend.server import EmbeddedBackend

    scenario = tmp_path / "blind.yaml"
    scenario.write_text(NO_OBSERVER)
    with EmbeddedBackend(tmp_path / "backend") as backend:
        info = backend.info
        assert info is not None
        target = tmp_path / "target.yaml"
        target.write_text(f"pairing_url: {info.pairing_url}\nrealm: fleetsim\nagent_jwt: {info.agent_jwt}\n"
                          f"ca_file: {info.ca_file}\n")
        proc = run_fleetsim(["run", str(scenario), "--target", str(target), "--results", str(tmp_path / "results"),
                             "--state-dir", str(tmp_path / "state"), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.rstrip().splitlines()
    assert "thresholds: 1/2 passed, 1 unknown (on_missing: skip)" in lines, proc.stdout
    assert any(line.startswith("  unknown lost: observed no value, required == 0 (no observer: delivered/lost "
                               "unknown") for line in lines), proc.stdout
    assert lines[-1] == "exit 0"
