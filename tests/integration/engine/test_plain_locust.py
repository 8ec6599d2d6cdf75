"""Plain `locust -f locustfile.py --headless` against a running `fleetsim backend` (issue 5, done-when 1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from simulator.generator.backend_process import BackendProcess
from tests.integration.engine.conftest import only_run_dir, summary_of

REPO = Path(__file__).resolve().parents[3]


def test_locust_headless_against_fleetsim_backend(tiny_scenario: Path, tmp_path: Path) -> None:
    with BackendProcess(tmp_path / "backend") as backend:
        info_file = tmp_path / "backend" / "backend.json"
        assert backend.info is not None and info_file.is_file()
        env = dict(os.environ, FLEETSIM_BACKEND_INFO=str(info_file), FLEETSIM_SCENARIO=str(tiny_scenario),
                   FLEETSIM_STATE_DIR=str(tmp_path / "gen"))
        proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless",
                               "-u", "20", "-r", "20", "-t", "12s", "--only-summary"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    rows = [line for line in out.splitlines() if line.startswith("OTAEvent")]
    assert rows, out
    # "Aggregated  N  0(0.00%)": no failures at all, and OTAEvents were acked.
    aggregated = [line for line in out.splitlines() if line.strip().startswith("Aggregated")]
    assert aggregated and re.search(r"\s0\(0\.00%\)", aggregated[0]), aggregated
    assert any(re.match(r"OTAEvent\s+Acknowledged\s+(\d+)", line) for line in rows)
    # The same books as `fleetsim run`: results written when Locust quits, nothing lost.
    summary = summary_of(only_run_dir(tmp_path / "results"))
    events = summary["events"]
    assert isinstance(events, dict) and events["sent"] == events["delivered"] > 0 and events["lost"] == 0


def test_locust_shape_follows_the_ramp_and_stops_at_the_scenario_end(tmp_path: Path) -> None:
    from tests.conftest import require_service
    from tests.integration.engine.test_ramp_run import RAMPED

    require_service("mosquitto", binary="mosquitto")
    scenario = tmp_path / "ramped.yaml"
    scenario.write_text(RAMPED)
    with BackendProcess(tmp_path / "backend") as backend:
        info_file = tmp_path / "backend" / "backend.json"
        assert backend.info is not None
        env = dict(os.environ, FLEETSIM_BACKEND_INFO=str(info_file), FLEETSIM_SCENARIO=str(scenario),
                   FLEETSIM_STATE_DIR=str(tmp_path / "gen"))
        # No -u, -r or -t: the shape brings the 20 devices online along the ramp and ends the test itself
        # (12 s of plan + drain), where Locust alone would run until interrupted.
        proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless",
                               "--only-summary"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Shape test stopping" in out, out
    assert re.search(r"updating to 20 users", out) and re.search(r"updating to [1-9] users", out), out
    summary = summary_of(only_run_dir(tmp_path / "results"))
    events = summary["events"]
    assert isinstance(events, dict) and events["sent"] == events["delivered"] > 0 and events["lost"] == 0


def test_a_backend_info_whose_backend_is_gone_is_one_line(tiny_scenario: Path, tmp_path: Path) -> None:
    # Issue 15 item 9: a backend killed without its cleanup leaves backend.json behind; plain Locust printed
    # two tracebacks (and one per device) before a clear error. Now: one line, exit 2.
    import signal

    backend = BackendProcess(tmp_path / "backend")
    backend.start()
    assert backend.pid is not None
    os.killpg(backend.pid, signal.SIGKILL)  # the backend and its broker, without any cleanup
    backend.stop()  # reaps the child
    info_file = tmp_path / "backend" / "backend.json"
    assert info_file.is_file()
    env = dict(os.environ, FLEETSIM_BACKEND_INFO=str(info_file), FLEETSIM_SCENARIO=str(tiny_scenario),
               FLEETSIM_STATE_DIR=str(tmp_path / "gen"))
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith("fleetsim:")]
    assert len(lines) == 1 and "the backend it describes is not running" in lines[0], out
