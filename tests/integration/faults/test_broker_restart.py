"""Broker restart: the control route restarts mosquitto on the same port; a run through a restart (and the
fault proxy) accounts for every event: delivered, or lost with a reason; nothing unexplained, nothing left."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import psutil

from simulator.backend.server import EmbeddedBackend
from tests.conftest import require_service
from tests.integration.engine.conftest import only_run_dir, run_scenario_text, summary_of

RESTART = """\
name: restart
seed: 5
fleet: {devices: 6}
time_scale: 120
duration: 7s
transport: lean
arrival: {model: constant, rate: 3, count: 6}
lifecycle:
  random: {outcomes: {success: 1.0}, download_duration: 120s, deploy_duration: 60s, reboot_duration: 30s}
faults:
  - {kind: broker_restart, at: 2s, duration: 0.5s}
  - {kind: network_delay, at: 1s, duration: 4s, devices: 0.5, params: {delay_ms: 20}}
"""


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        doc = json.loads(resp.read())
    assert isinstance(doc, dict)
    return doc


def test_control_route_restarts_the_broker_on_the_same_port(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    with EmbeddedBackend(tmp_path / "state") as backend:
        info = backend.info
        assert info is not None and backend.broker is not None
        old_pid = getattr(backend.broker, "pid", None)
        reply = _post(f"{info.control_url}/broker/restart", {"down_s": 0.2})
        assert reply["port"] == info.broker_port
        assert float(str(reply["started_at"])) - float(str(reply["stopped_at"])) >= 0.2
        assert getattr(backend.broker, "pid", None) != old_pid
        with socket.create_connection(("127.0.0.1", info.broker_port), timeout=5):
            pass  # listening again
        bad = urllib.request.Request(f"{info.control_url}/broker/restart", data=b'{"down_s": -1}',
                                     method="POST")
        try:
            urllib.request.urlopen(bad, timeout=5)
            raise AssertionError("a negative down_s must be refused")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400


def test_run_through_a_broker_restart_leaves_no_unexplained_event(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    proc, results = run_scenario_text(tmp_path, "restart", RESTART)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1 = a threshold breached, still a run
    summary = summary_of(only_run_dir(results))
    acc = summary["accounting"]
    assert isinstance(acc, dict)
    assert acc["unexpected"] == 0 and acc["duplicate_sends"] == 0
    assert acc["delivered"] + acc["late"] + acc["lost"] == acc["planned"]
    assert sum(acc["lost_reasons"].values()) == acc["lost"]
    assert acc["delivered"] > 0
    extra = summary["extra"]
    assert isinstance(extra, dict)
    faults = {f["kind"]: f for f in extra["faults"]}
    restart = faults["broker_restart"]
    assert restart["errors"] == [] and restart["started"] and restart["ended"] > restart["started"]
    assert restart["broker"]["port"] > 0
    # The devices online at the restart reconnected by themselves, and the log says how fast (reconnect storm).
    assert restart["devices_back"] == restart["devices_before"] > 0 and restart["all_back_s"] >= 0
    delay = faults["network_delay"]
    assert delay["devices"] == 3 and delay["errors"] == [] and delay["proxy_stats"]["connections_total"] >= 3
    leftovers = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                 if any(str(tmp_path) in part for part in (p.info["cmdline"] or []))]
    assert leftovers == []
