"""fleetsim drives an Edgehog (the stand-in of standin.py) through its GraphQL API; devices answer over MQTT.

The devices onboard on the embedded backend through a target file (as on a staging Astarte) whose `edgehog:`
section names the stand-in, with the tenant's private key (fleetsim signs the token, the stand-in verifies
it). The stand-in publishes OTARequests to the devices through the broker and records their OTAEvents with no
terminal-state guard; the summary must show each operation as the stand-in recorded it, and a Success
overwritten by a late Downloading as diverged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulator.backend.server import EmbeddedBackend
from tests.conftest import require_service
from tests.integration.edgehog.standin import EdgehogStandIn
from tests.integration.engine.conftest import only_run_dir, summary_of

pytestmark = pytest.mark.integration

SCENARIO = """\
name: edgehog-loop
realm: fleetsim
seed: 21
fleet: {{devices: {devices}, target_version: 1.1.0}}
time_scale: 600
duration: 60s
mode: campaign
campaign: {{max_in_progress: 2, request_timeout: 5m, request_retries: 3, max_failure_percentage: 100}}
lifecycle:
  random:
    outcomes: {{success: 1.0}}
    download_duration: 600s
    deploy_duration: 60s
    reboot_duration: 60s
"""


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[Path, Path, EmbeddedBackend, bytes]]:
    require_service("mosquitto", binary="mosquitto")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "tenant.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    with EmbeddedBackend(tmp_path / "backend") as backend:
        yield tmp_path, tmp_path / "target.yaml", backend, public


def _write_target(path: Path, backend: EmbeddedBackend, standin: EdgehogStandIn, drive: str) -> None:
    info = backend.info
    assert info is not None
    path.write_text(f"pairing_url: {info.pairing_url}\nrealm: fleetsim\nagent_jwt: {info.agent_jwt}\n"
                    f"ca_file: {info.ca_file}\n"
                    f"edgehog:\n  url: {standin.url}\n  tenant: acme\n  tenant_private_key: tenant.key\n"
                    f"  drive: {drive}\n  poll_interval: 0.2s\n")


def _run(tmp: Path, target: Path, devices: int) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    scenario = tmp / "loop.yaml"
    scenario.write_text(SCENARIO.format(devices=devices))
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(scenario), "--target", str(target), "--results",
         str(tmp / "results"), "--state-dir", str(tmp / "st"), "--quiet"],
        cwd=tmp, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, summary_of(only_run_dir(tmp / "results"))


def test_campaign_through_graphql_reports_edgehogs_state_and_a_regression(
        loop: tuple[Path, Path, EmbeddedBackend, bytes]) -> None:
    tmp, target, backend, public = loop
    info = backend.info
    assert info is not None
    standin = EdgehogStandIn(info, "acme", public, late_downloading=1).start()
    try:
        _write_target(target, backend, standin, "campaign")
        proc, summary = _run(tmp, target, devices=5)
    finally:
        standin.stop()
    assert standin.refused == []
    # What a user would have clicked in Edgehog's UI, once each, then the campaign.
    for field in ("createHardwareType", "createSystemModel", "createBaseImageCollection", "createBaseImage",
                  "createDeviceGroup", "createChannel", "createCampaign"):
        assert standin.calls.count(field) == 1, (field, standin.calls)
    assert standin.calls.count("addDeviceTags") == 5
    (run,) = standin.campaigns.values()
    assert run.status == "FINISHED" and run.max_in_progress == 2 and len(run.targets) == 5
    assert standin.peak_in_progress <= 2
    assert len(standin.regressed) == 1

    metrics = summary["extra"]["campaign_metrics"]  # type: ignore[index]
    assert metrics["driver"] == "edgehog" and metrics["backend_status"] == "FINISHED/SUCCESS"
    assert metrics["operations"] == 5 and metrics["answered"] == 5 and metrics["max_in_progress"] == 2
    assert metrics["request_to_ack"]["count"] == 5 and metrics["over_limit"] is False
    c = metrics["convergence"]
    assert (c["checked"], c["converged"], c["diverged_count"], c["never_reached"]) == (5, 4, 1, 0)
    (d,) = c["diverged"]
    regressed = standin.ops[standin.regressed[0]]
    assert (d["device"], d["uuid"]) == (regressed.device, regressed.id)
    assert (d["backend_status"], d["device_status"]) == ("DOWNLOADING", "Success")
    assert f"DIVERGED {regressed.device} {regressed.id}: backend DOWNLOADING, device sent Success" in proc.stdout
    # Every other operation as the stand-in recorded it: SUCCESS, the uuid the device was sent.
    recorded = {(o.device, o.id): o.status for o in standin.ops.values()}
    assert sorted(recorded.values()) == ["DOWNLOADING", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"]
    assert summary["extra"]["campaign"]["successfulTargetCount"] == 5  # type: ignore[index]


def test_manual_ota_operations_one_per_device(loop: tuple[Path, Path, EmbeddedBackend, bytes]) -> None:
    tmp, target, backend, public = loop
    info = backend.info
    assert info is not None
    standin = EdgehogStandIn(info, "acme", public).start()
    try:
        _write_target(target, backend, standin, "manual")
        _, summary = _run(tmp, target, devices=3)
    finally:
        standin.stop()
    assert standin.refused == [] and standin.calls.count("createManualOtaOperation") == 3
    assert "createCampaign" not in standin.calls
    metrics = summary["extra"]["campaign_metrics"]  # type: ignore[index]
    assert metrics["driver"] == "edgehog" and metrics["operations"] == 3
    c = metrics["convergence"]
    assert (c["checked"], c["converged"], c["diverged_count"]) == (3, 3, 0)
    assert sorted(o.status for o in standin.ops.values()) == ["SUCCESS"] * 3
