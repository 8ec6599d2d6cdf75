"""`fleetsim run` with `fleet.ramp`: devices come online along the ramp, and none publishes before its time."""

from __future__ import annotations

import csv
from pathlib import Path

from simulator.plan import build_plan
from simulator.scenario.loader import load_scenario
from tests.conftest import require_service
from tests.integration.engine.conftest import only_run_dir, run_fleetsim, summary_of

RAMPED = """\
name: ramped
realm: fleetsim
seed: 5
fleet:
  devices: 20
  ramp: [{duration: 4s, devices: 10}, {duration: 4s, devices: 20}]
time_scale: 600
duration: 12s
transport: lean
arrival: {model: constant, rate: 4}
lifecycle:
  random:
    outcomes: {success: 0.9, rollback: 0.1}
    download_duration: 60s
    deploy_duration: 60s
    reboot_duration: 60s
thresholds:
  lost: "== 0"
"""


def test_ramped_run_sends_nothing_before_a_device_is_online(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    path = tmp_path / "ramped.yaml"
    path.write_text(RAMPED)
    plan = build_plan(load_scenario(str(path)))
    # The plan itself: the first operation at 0 s finds nobody online; later ones wait for their device.
    busy = {op.device for op in plan.operations}
    assert plan.dropped >= 1 and max(busy) >= 15, busy
    results = tmp_path / "results"
    proc = run_fleetsim(["run", str(path), "--results", str(results), "--state-dir", str(tmp_path / "state"),
                         "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(results)
    summary = summary_of(run_dir)
    # The subject is the ramp. Under the full suite on 2 cores one run's send-lag p99 went past the saturation
    # threshold (60.5 ms > 50 ms, 2026-12-07): that flag judges the machine's timing, not the ramp, so it is
    # allowed. The verdict's other reasons, which saturation outranks, are the counts asserted just below:
    # events never offered, lost, publish/ack errors.
    assert summary["verdict"] in ("ok", "generator_saturated"), summary.get("verdict_reasons")
    events = summary["events"]
    assert isinstance(events, dict)
    assert events["planned"] == events["sent"] == events["delivered"] == plan.planned_events
    assert events["lost"] == 0
    assert events["publish_errors"] == events["ack_errors"] == 0
    start = float(summary["started_at_epoch"])  # type: ignore[arg-type]
    first_sent: dict[str, float] = {}
    first_intended: dict[str, float] = {}
    with (run_dir / "events.sent.csv").open() as f:
        for row in csv.DictReader(f):
            dev = row["device_id"]
            first_sent[dev] = min(first_sent.get(dev, float("inf")), float(row["sent"]))
            first_intended[dev] = min(first_intended.get(dev, float("inf")), float(row["intended"]))
    assert set(first_sent) == {plan.device_ids[i] for i in busy}
    for index in busy:
        dev = plan.device_ids[index]
        online_s = plan.online_us[index] / 1e6
        assert first_intended[dev] - start >= online_s - 0.001, (index, first_intended[dev] - start, online_s)
        assert first_sent[dev] - start >= online_s - 0.001, (index, first_sent[dev] - start, online_s)
    with (run_dir / "timeseries.csv").open() as f:
        online = [int(float(row["devices_online"])) for row in csv.DictReader(f)]
    assert any(0 < n < 15 for n in online) and max(online) == 20, online  # the users followed the ramp
    # The ramp is real: the last device's first event comes well after the first device's.
    assert first_sent[plan.device_ids[max(busy)]] - first_sent[plan.device_ids[0]] > 5.0
