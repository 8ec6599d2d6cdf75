"""A breached threshold through the real CLI: `fleetsim run` exits 1 and junit.xml names the breach."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import require_service
from tests.integration.engine.conftest import only_run_dir, run_scenario_text

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
