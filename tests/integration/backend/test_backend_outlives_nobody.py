"""The embedded backend child (and its mosquitto, and mosquitto's log relay) must not outlive a generator that died
without stopping it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import require_service

PARENT = """
import pathlib, sys, time
from simulator.generator.backend_process import BackendProcess
backend = BackendProcess(pathlib.Path(sys.argv[1]))
print(backend.start().broker_url, flush=True)
time.sleep(120)  # sleep-ok: a stand-in for a generator that is then SIGKILLed
"""


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_backend_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "backend")], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None and parent.stdout.readline().startswith("mqtts://")
    kids = [c.pid for c in psutil.Process(parent.pid).children(recursive=True)]
    commands = [" ".join(psutil.Process(k).cmdline()) for k in kids]
    assert any("mosquitto -c" in c for c in commands), commands
    assert any("simulator.backend.log_relay" in c for c in commands), commands  # the relay is checked too
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(kids) and time.monotonic() < deadline:
        time.sleep(0.1)  # sleep-ok: polling other processes' exit; nothing here to wait on
    assert _alive(kids) == []
