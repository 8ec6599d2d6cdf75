"""Fixtures for end-to-end runs: a tiny scenario and `fleetsim run` in a subprocess (Locust patches gevent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service

TINY = """\
name: tiny
realm: fleetsim
seed: {seed}
fleet: {{devices: {devices}}}
time_scale: 600
duration: 3s
transport: lean
arrival: {{model: constant, rate: 4, count: {devices}}}
lifecycle:
  random:
    outcomes: {{success: 0.8, rollback: 0.1, download_exhausted: 0.1}}
    download_duration: 60s
    deploy_duration: 60s
    reboot_duration: 60s
    download_error_probability: 0.2
thresholds:
  lost: "== 0"
"""


@pytest.fixture
def tiny_scenario(tmp_path: Path) -> Path:
    require_service("mosquitto", binary="mosquitto")
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(seed=11, devices=6))
    return path


def run_fleetsim(args: list[str], cwd: Path, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_scenario_text(tmp_path: Path, name: str, text: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Write `text` as tmp_path/<name>.yaml and `fleetsim run` it quietly against a fresh embedded backend;
    (the finished process, the results folder)."""
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(text)
    results = tmp_path / "results"
    proc = run_fleetsim(["run", str(scenario), "--results", str(results), "--state-dir", str(tmp_path / "st"),
                         "--quiet"], cwd=tmp_path)
    return proc, results


def only_run_dir(results: Path) -> Path:
    dirs = [d for d in results.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def summary_of(run_dir: Path) -> dict[str, object]:
    doc = json.loads((run_dir / "summary.json").read_text())
    assert isinstance(doc, dict)
    return doc
