"""Runs against a running embedded backend (`--target backend.json`), looking at what the backend saw:
deliberate drops are reported lost with their reason; BaseImage after Success and after SystemRollback."""

from __future__ import annotations

import csv
import json
import urllib.request
from pathlib import Path

from simulator.generator.backend_process import BackendProcess
from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of


def _post(url: str, body: object) -> object:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert isinstance(doc, dict)
    return doc


def _plan(scenario: Path, cwd: Path) -> list[dict[str, object]]:
    proc = run_fleetsim(["plan", str(scenario)], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_dropped_arrivals_are_lost_with_their_reason(tiny_scenario: Path, tmp_path: Path) -> None:
    plan = _plan(tiny_scenario, tmp_path)
    victim = str(plan[0]["device_id"])
    expected = sorted((str(a["payload"]["requestUUID"]), str(a["payload"]["statusProgress"]))  # type: ignore[index]
                      for a in plan if a["device_id"] == victim and a["kind"] == "publish"
                      and a["payload"]["status"] == "Downloading")  # type: ignore[index]
    assert expected
    with BackendProcess(tmp_path / "backend") as backend:
        assert backend.info is not None
        _post(backend.info.control_url + "/drop", {"rules": [{"device_id": victim, "status": "Downloading"}]})
        proc = run_fleetsim(["run", str(tiny_scenario), "--target", str(tmp_path / "backend" / "backend.json"),
                             "--results", str(tmp_path / "results"), "--state-dir", str(tmp_path / "gen"),
                             "--quiet"], cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the scenario's `lost: "== 0"` threshold breaks
    run_dir = only_run_dir(tmp_path / "results")
    summary = summary_of(run_dir)
    events = summary["events"]
    assert isinstance(events, dict) and events["lost"] == len(expected)
    assert summary["lost_reasons"] == {"acked_not_arrived": len(expected), "never_acked": 0, "publish_failed": 0}
    with (run_dir / "events.arrivals.csv").open() as f:
        arrived = {(r[0], r[2]) for r in list(csv.reader(f))[1:]}
    assert (victim, "Downloading") not in arrived
    junit = (run_dir / "junit.xml").read_text()
    assert "lost" in junit and "<failure" in junit


ROLLBACK = """\
name: slots
seed: 5
fleet: {devices: 6, base_image: {version: 1.0.0}, target_version: 2.0.0}
time_scale: 600
duration: 3s
arrival: {model: constant, rate: 4, count: 6}
lifecycle:
  random:
    outcomes: {success: 0.5, rollback: 0.5}
    download_duration: 60s
    deploy_duration: 60s
    reboot_duration: 60s
"""


def test_base_image_is_new_after_success_and_old_after_rollback(tmp_path: Path) -> None:
    scenario = tmp_path / "slots.yaml"
    scenario.write_text(ROLLBACK)
    finals = {}
    for action in _plan(scenario, tmp_path):
        payload = action["payload"]
        if action["kind"] == "publish" and isinstance(payload, dict) and payload["status"] in ("Success", "Failure"):
            finals[str(action["device_id"])] = (payload["status"], payload["statusCode"])
    assert {s for s, _ in finals.values()} == {"Success", "Failure"}  # the seed gives both outcomes
    with BackendProcess(tmp_path / "backend") as backend:
        assert backend.info is not None
        proc = run_fleetsim(["run", str(scenario), "--target", str(tmp_path / "backend" / "backend.json"),
                             "--results", str(tmp_path / "results"), "--state-dir", str(tmp_path / "gen"),
                             "--quiet"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for device, (status, code) in finals.items():
            props = _get(f"{backend.info.control_url}/devices/{device}/properties")["properties"]
            assert isinstance(props, dict)
            version = props["io.edgehog.devicemanager.BaseImage"]["/version"]
            if status == "Success":
                assert version == "2.0.0", (device, props)
            else:
                assert code == "SystemRollback" and version == "1.0.0", (device, props)
