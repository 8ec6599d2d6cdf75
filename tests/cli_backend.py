"""A standalone `fleetsim backend` for tests that run fleetsim against it (`--target STATE/backend.json`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BACKEND_START_S = 30.0


def start_backend(state: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """`fleetsim backend --state-dir state`, once its backend.json is written (bounded by BACKEND_START_S)."""
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "backend", "--state-dir", str(state)], cwd=cwd,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + BACKEND_START_S
    while not (state / "backend.json").exists():
        assert proc.poll() is None, f"fleetsim backend exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"no backend.json within {BACKEND_START_S} s"
        time.sleep(0.1)  # sleep-ok: polling for another process's file, bounded by the deadline
    return proc
