"""Replaying a recorded run against the embedded backend (real broker, real TLS, lean transport) reproduces
the same per-device event order and count, both in the new run's send log and at the collector."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from simulator.events import ActionKind, EventKey
from simulator.outputs.csv_logs import (
    ARRIVALS_FILE,
    SENT_FILE,
    read_arrival_log,
    read_send_log,
    write_send_log,
)
from simulator.plan import build_plan
from simulator.records import SendRecord
from simulator.replay.recorder import record_run
from simulator.replay.replay_file import write_replay
from simulator.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]
SPEED = 2.0
# Three devices, one OTA each, with download errors, reboots (0.5 s of wall time) and rollbacks.
SCENARIO = """
name: replay-source
seed: 7
fleet: {devices: 3, id_scheme: sequential, id_prefix: "rp"}
time_scale: 60
duration: 4s
arrival: {model: constant, rate: 1, count: 3}
lifecycle:
  random:
    outcomes: {success: 0.5, rollback: 0.5}
    download_duration: 30s
    deploy_duration: 20s
    reboot_duration: 30s
    download_error_probability: 0.3
"""


def _recorded_run(tmp_path: Path) -> tuple[Path, list[SendRecord]]:
    """A run directory as `fleetsim run` leaves it: the send log of a real plan at its intended times, and
    summary.json."""
    (tmp_path / "source.yaml").write_text(SCENARIO)
    scenario = load_scenario(tmp_path / "source.yaml")
    plan = build_plan(scenario)
    start = 1_800_000_000.0
    sends = []
    for index, dev in enumerate(plan.device_ids):
        for a in plan.actions_for(index):
            if a.kind is ActionKind.PUBLISH and isinstance(a.value, dict):
                key: EventKey = (
                    dev,
                    a.value["requestUUID"],
                    a.value["status"],
                    a.value["statusProgress"],
                    a.occurrence,
                )
                at = start + a.offset_us / 1e6
                sends.append(SendRecord(key, at, at, int(at * 1000), at + 0.001, code=a.value["statusCode"]))
    run_dir = tmp_path / "recorded"
    run_dir.mkdir()
    write_send_log(run_dir / SENT_FILE, sends)
    (run_dir / "summary.json").write_text(
        json.dumps(
            {"started_at_epoch": start, "scenario": scenario.name, "seed": scenario.seed, "devices": 3}
        )
    )
    return run_dir, sends


def _per_device(keys: list[EventKey]) -> dict[str, list[tuple[str, str, int, int]]]:
    out: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for device, uuid, status, progress, occurrence in keys:
        out[device].append((uuid, status, progress, occurrence))
    return dict(out)


def test_replay_reproduces_per_device_order_and_count(tmp_path: Path, mosquitto_binary: str) -> None:
    run_dir, original = _recorded_run(tmp_path)
    header, entries = record_run(run_dir)
    replay_file = write_replay(tmp_path / "run.jsonl", header, entries)
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "replay",
            str(replay_file),
            "--speed",
            str(SPEED),
            "--results",
            str(results),
            "--state-dir",
            str(tmp_path / "state"),
            "--broker",
            "mosquitto",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (replayed_dir,) = results.iterdir()
    assert replayed_dir.name.endswith("-replay-run")
    sent = read_send_log(replayed_dir / SENT_FILE)
    arrivals = read_arrival_log(replayed_dir / ARRIVALS_FILE)
    expected = _per_device([r.key for r in sorted(original, key=lambda r: r.intended)])
    by_intended = sorted(sent, key=lambda r: (r.intended, r.sent or 0.0))
    assert _per_device([r.key for r in by_intended]) == expected
    assert all(r.error is None for r in sent), [r.error for r in sent if r.error]
    # The collector saw every event once, each device's in the recorded order (QoS 2 keeps per-client order).
    assert _per_device([a.key for a in sorted(arrivals, key=lambda a: a.arrival)]) == expected
    summary = json.loads((replayed_dir / "summary.json").read_text())
    assert summary["events"]["delivered"] == len(original)
    assert summary["extra"]["replay"]["speed"] == SPEED
    assert summary["extra"]["fleet"]["reboots"] == sum(
        1 for e in entries if type(e).__name__ == "ReplayReboot"
    )


@pytest.mark.parametrize("fixture", ["edgehog-915-two-operations-in-progress.jsonl"])
def test_field_bug_fixture_replays(tmp_path: Path, mosquitto_binary: str, fixture: str) -> None:
    path = ROOT / "simulator" / "replay" / "fixtures" / fixture
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator",
            "replay",
            str(path),
            "--speed",
            "4",
            "--results",
            str(results),
            "--state-dir",
            str(tmp_path / "state"),
            "--broker",
            "mosquitto",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (replayed_dir,) = results.iterdir()
    summary = json.loads((replayed_dir / "summary.json").read_text())
    assert summary["events"]["delivered"] == summary["events"]["planned"] == 23
    assert summary["ota"]["success"] == 1
