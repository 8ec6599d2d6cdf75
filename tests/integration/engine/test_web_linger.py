"""`fleetsim run --web`: the Locust web UI stays up after the run (results written) until Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, summary_of

WAIT_S = 120.0  # the whole run (onboarding, 3 s plan, drain, results) on a loaded machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_web_ui_stays_up_after_the_run_until_ctrl_c(tiny_scenario: Path, tmp_path: Path) -> None:
    port = _free_port()
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "run", str(tiny_scenario), "--web", "--web-port",
                             str(port), "--results", str(results), "--state-dir", str(tmp_path / "state")],
                            cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
    seen: list[str] = []
    try:
        while not any("still up" in line for line in seen):
            seen.append(lines.get(timeout=WAIT_S))  # queue.Empty fails the test with what was seen so far
        assert proc.poll() is None, "".join(seen)
        # The results are written before the UI lingers.
        summary = summary_of(only_run_dir(results))
        assert isinstance(summary["events"], dict) and summary["events"]["delivered"] > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/requests", timeout=10) as resp:
            assert b"OTAEvent" in resp.read()  # the run's final numbers are still served
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen)  # the run's verdict, not 130: Ctrl-C only closed the UI
