"""One credentials cache per target (issue 15 item 1), through the real CLI against the embedded backend.

Before: lean and sdk kept separate caches, so `--transport sdk` after a lean run on one state dir failed every
device ("already registered ... secret is not in .fleetsim/credentials/sdk/...", exit 2) and lean after sdk got
HTTP 422. Now both transports share the cache, and `fleetsim devices list|unregister|forget` manages it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import require_service
from tests.integration.engine.conftest import TINY, run_fleetsim

DEVICES = 6


def _scenario(tmp_path: Path) -> Path:
    require_service("mosquitto", binary="mosquitto")
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(seed=11, devices=DEVICES))
    return path


def _run(tmp_path: Path, scenario: Path, transport: str, state: str) -> tuple[int, str]:
    proc = run_fleetsim(["run", str(scenario), "--transport", transport, "--state-dir", state,
                         "--results", "results", "--quiet"], cwd=tmp_path)
    return proc.returncode, proc.stdout + proc.stderr


def _devices(tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = run_fleetsim(["devices", *args], cwd=tmp_path, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_sdk_after_lean_uses_the_same_credentials(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    code, out = _run(tmp_path, scenario, "lean", "st")
    assert code == 0, out
    assert re.search(r"broker: mosquitto \d+\.\d+", out) and "pip-only" not in out, out  # issue 15 item 6
    code, out = _run(tmp_path, scenario, "sdk", "st")
    assert code == 0 and "already registered" not in out, out
    # One cache for the target, no transport-specific one.
    roots = sorted(p.name for p in (tmp_path / "st" / "credentials").iterdir())
    assert len(roots) == 1 and roots[0].startswith("fleetsim_127.0.0.1-"), roots
    code, out = _devices(tmp_path, "list", "--state-dir", "st", "--scenario", str(scenario))
    assert code == 0, out
    assert f"{DEVICES} device(s) cached for realm fleetsim" in out
    assert out.count("secret + certificate") == DEVICES, out
    log = (tmp_path / "st" / "backend" / "backend-process.log").read_text()
    assert "Fatal Python error" not in log, log  # issue 15 item 7, after real runs


def test_a_device_that_cannot_pair_is_named_with_its_reason(tmp_path: Path) -> None:
    # Issue 15 item 4: one device the target refuses (its secret forgotten locally) is reported by name and
    # reason, on the console and in summary.json, while the others run.
    scenario = _scenario(tmp_path)
    code, out = _run(tmp_path, scenario, "lean", "st")
    assert code == 0, out
    code, out = _devices(tmp_path, "list", "--state-dir", "st")
    victim = out.splitlines()[1].split()[0]
    code, out = _devices(tmp_path, "forget", victim, "--state-dir", "st")
    assert code == 0 and "forgot 1 device(s)" in out, out
    code, out = _run(tmp_path, scenario, "lean", "st")
    assert f"devices that never came online: 1: {victim}: AlreadyRegistered" in out, out
    run_dir = max(p for p in (tmp_path / "results").iterdir() if p.is_dir())
    extra = json.loads((run_dir / "summary.json").read_text())["extra"]
    fleet, failed = extra["fleet"], extra["failed_devices"]
    assert fleet["failed"] == 1 and fleet["online"] == DEVICES - 1
    assert list(failed) == [victim] and "HTTP 422" in failed[victim]


def test_lean_after_sdk_then_forget_and_unregister(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    code, out = _run(tmp_path, scenario, "sdk", "st")
    assert code == 0, out
    code, out = _run(tmp_path, scenario, "lean", "st")
    assert code == 0 and "HTTP 422" not in out, out  # "422" alone can be a latency (422.655 ms)

    # forget = local only: the backend still has the devices, so registering again is refused, and the
    # message says how to free them.
    code, out = _devices(tmp_path, "forget", "--state-dir", "st")
    assert code == 0 and f"forgot {DEVICES} device(s)" in out, out
    code, out = _devices(tmp_path, "list", "--state-dir", "st")
    assert code == 0 and "0 device(s) cached" in out, out
    code, out = _run(tmp_path, scenario, "lean", "st")
    assert code != 0 and "HTTP 422" in out and "fleetsim devices unregister" in out, out

    # unregister through the Pairing API frees the ids: the next run registers them again.
    code, out = _devices(tmp_path, "unregister", "--state-dir", "st", "--scenario", str(scenario))
    assert code == 0 and f"unregistered {DEVICES} device(s)" in out and "0 failed" in out, out
    code, out = _run(tmp_path, scenario, "lean", "st")
    assert code == 0 and "HTTP 422" not in out, out  # "422" alone can be a latency (422.655 ms)


def test_devices_uses_the_backend_already_running_on_the_state_dir(tmp_path: Path) -> None:
    # A second embedded backend on the same state dir would share its device registry file: use the running
    # one (its backend.json), and say where.
    from simulator.generator.backend_process import BackendProcess

    require_service("mosquitto", binary="mosquitto")
    with BackendProcess(tmp_path / "st" / "backend") as backend:
        assert backend.info is not None
        code, out = _devices(tmp_path, "unregister", "AAAAAAAAAAAAAAAAAAAAAA", "--state-dir", "st")
        assert code == 0, out
        assert f"at {backend.info.pairing_url};" in out and "1 were not registered" in out, out
