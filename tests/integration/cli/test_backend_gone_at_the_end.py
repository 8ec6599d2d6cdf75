"""A standalone `fleetsim backend` that is gone before the run's end (a soak's backend killed, its collector
refusing connections) never loses the run: the results are written from the books read so far, marked partial,
with the reason in summary.json and in the console's last line (exit 130). Before, `fleetsim run` died with
"collector at ... unreachable" and wrote nothing (a 10 M-event soak's 2 M joined events lost)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_backend import start_backend
from tests.conftest import require_service
from tests.integration.engine.conftest import only_run_dir, summary_of

# 2 h of plan at 2 operations/s: stopped by Ctrl-C after the backend is gone, a few seconds into it.
LONG = """\
name: backend-gone
realm: fleetsim
seed: 9
fleet: {devices: 10}
time_scale: 1
duration: 2h
graceful_stop: 10s
transport: lean
arrival: {model: constant, rate: 2}
lifecycle:
  random:
    outcomes: {success: 1.0}
    download_duration: 3s
    deploy_duration: 2s
    reboot_duration: 2s
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_a_backend_gone_before_the_end_still_gets_the_run_written_with_the_reason(tmp_path: Path,
                                                                                  processes: int) -> None:
    require_service("mosquitto", binary="mosquitto")
    scenario = tmp_path / "gone.yaml"
    scenario.write_text(LONG)
    results = tmp_path / "results"
    backend = start_backend(tmp_path / "backend", tmp_path)
    run = subprocess.Popen([sys.executable, "-m", "simulator", "run", str(scenario), "--target",
                            str(tmp_path / "backend" / "backend.json"), "--processes", str(processes),
                            "--state-dir", str(tmp_path / "gen"), "--results", str(results)], cwd=tmp_path,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None
    try:
        deadline = time.monotonic() + 120
        for line in run.stderr:  # the plan has played a few seconds ("[  3s, 7207s left]")
            played = re.search(r"\[\s*(\d+)s, \d+s left\]", line)
            if (played and int(played.group(1)) >= 3) or time.monotonic() > deadline:
                break
        assert time.monotonic() < deadline, "the plan never started playing"
        backend.terminate()  # the backend goes first, as the soak's did
        backend.wait(timeout=60)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=240)
    finally:
        for proc in (run, backend):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert run.returncode == 130, out + err
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("exit 130: interrupted: partial results; "), out
    assert "collector unreachable at the end (collector at http" in last and "not read" in last, last
    summary = summary_of(only_run_dir(results))
    assert summary["partial"] is True
    extra = summary["extra"]
    assert isinstance(extra, dict)
    assert extra["reason"].startswith("interrupted (Ctrl-C); ")
    assert "collector unreachable at the end" in extra["reason"]
    events = summary["events"]
    assert isinstance(events, dict) and events["acked"] > 0  # the books so far, not an empty run
