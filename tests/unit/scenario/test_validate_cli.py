"""`fleetsim validate`: exit 0 with `ok: FILE`, or exit 2 with one file:line: field: message per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def test_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(SCENARIOS / "quickstart.yaml"), str(SCENARIOS / "soak.yaml")]
    assert main(["validate", *paths]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"ok: {p}" for p in paths] and out.err == ""


def test_bad_file_exits_2_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfleet:\n  devicse: 3\narrival: {model: constant, rate: -1}\n")
    good = SCENARIOS / "happy-path.yaml"
    assert main(["validate", str(good), str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"ok: {good}"]
    assert out.err.splitlines() == [
        f"{bad}:3: fleet.devicse: unknown key 'devicse'; did you mean 'devices'?",
        f"{bad}:4: arrival.rate: must be > 0 operations/s for the constant model, got -1.0",
    ]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'none.yaml'}: no such file\n"


def test_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nfleet: {devices: 0}\n")
    done = subprocess.run([sys.executable, "-m", "simulator", "validate", str(bad)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == f"{bad}:2: fleet.devices: must be between 1 and 10,000,000, got 0\n"
    assert "Traceback" not in done.stderr
