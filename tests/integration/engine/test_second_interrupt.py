"""The second Ctrl-C (k6's hard stop): after a first Ctrl-C the master counts the rest of a long plan (not
played: not_attempted, cut) and says how far it got every few seconds; a second Ctrl-C stops the count and the
results are written at once, with not_attempted and the cut's counts null and a note, never a number made up
from the part of the plan that was counted. Both Ctrl-Cs go to the process group, as a terminal sends them:
the master's local workers are not in it (before, they died of the first one and the run's books were lost)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.engine.conftest import only_run_dir, summary_of

NOT_COUNTED = "the plan after the stop was not counted (second Ctrl-C)"

# 48 h of plan at 2 operations/s (345,600 operations: tens of seconds of CPU to count under nice 19), so that
# the count is still going when the second Ctrl-C comes.
LONG = """\
name: long-second-interrupt
seed: 7
fleet: {devices: 20}
time_scale: 1
duration: 48h
graceful_stop: 10s
arrival: {model: constant, rate: 2}
lifecycle:
  random:
    outcomes: {success: 1.0}
    download_duration: 3s
    deploy_duration: 2s
    reboot_duration: 2s
"""


def _wait_for(stream: object, pattern: str, timeout_s: float, seen: list[str]) -> re.Match[str] | None:
    deadline = time.monotonic() + timeout_s
    for line in stream:  # type: ignore[attr-defined]
        seen.append(line)
        found = re.search(pattern, line)
        if found or time.monotonic() > deadline:
            return found
    return None


def test_a_second_ctrl_c_stops_counting_the_plan_and_writes_the_results_at_once(tiny_scenario: Path,
                                                                                tmp_path: Path) -> None:
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG)
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "run", str(scenario), "--processes", "2",
                             "--results", str(results), "--state-dir", str(tmp_path / "state")], cwd=tmp_path,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        assert _wait_for(proc.stderr, r"\[\s*[3-9]s, \d+s left\]", 120, seen), "".join(seen[-20:])
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: its whole foreground process group
        assert _wait_for(proc.stderr, r"counting the rest of the plan .*Ctrl-C again to skip it", 120, seen), \
            "".join(seen[-20:])
        progress = _wait_for(proc.stderr, r"counted (\d+) of ~172800 s of plan", 60, seen)
        assert progress, "".join(seen[-20:])
        assert int(progress.group(1)) < 172_800
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + err
    assert proc.returncode == 130, out + err
    assert took < 30.0, f"writing the results took {took:.1f} s after the second Ctrl-C"
    assert f"fleetsim: {NOT_COUNTED}: not_attempted and cut are written as null" in err
    assert out.rstrip().splitlines()[-1] == f"exit 130: interrupted: partial results; {NOT_COUNTED}"
    summary = summary_of(only_run_dir(results))
    extra = summary["extra"]
    assert isinstance(extra, dict)
    assert extra["not_attempted"] is None and extra["not_attempted_reason"] == NOT_COUNTED
    cut = extra["cut"]
    assert cut["operations"] is None and cut["events"] is None and cut["counted"] is False
    assert cut["reason"] == NOT_COUNTED
    assert 0 < extra["plan_digest_steps"] < 345_600  # the digest covers the plan's first steps only
    assert extra["reason"] == "interrupted (Ctrl-C)"  # the workers' digests were not called another plan
    # The terminal's Ctrl-C reached the master only (workers have sessions of their own): both sent their books.
    assert len(extra["workers"]) == 2
    events = summary["events"]
    assert isinstance(events, dict) and events["offered"] > 0
