"""Issue 17: /metrics during real runs against the embedded backend (one process, and a master with 2 workers),
OTLP from the same run, the dashboard's queries against a real scrape, latency.hlog through hdrh's reader."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from tests.conftest import require_service
from tests.integration.telemetry.live_run import SCENARIO, LiveRun, free_port, run_live, scrape_process
from tests.integration.telemetry.otlp_receiver import OtlpReceiver, attributes, metrics_of

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "docs" / "grafana" / "fleetsim.json"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LiveRun, OtlpReceiver]:
    require_service("mosquitto", binary="mosquitto")
    tmp = tmp_path_factory.mktemp("live1")
    with OtlpReceiver() as receiver:
        run = run_live(tmp, ["--otlp", receiver.url])
    return run, receiver


def _summary(run: LiveRun) -> dict[str, Any]:
    doc = json.loads((run.run_dir / "summary.json").read_text())
    assert isinstance(doc, dict)
    return doc


def _check_live_and_final(run: LiveRun) -> None:
    summary = _summary(run)
    scrapes = run.scrapes
    assert len(scrapes) >= 8, f"only {len(scrapes)} scrapes answered"
    acked = [s.value("fleetsim_events_acked_total") for s in scrapes]
    assert acked == sorted(acked), "a counter went down"
    # Moving while the run played: some scrape saw part of the events (a master sees workers' reports every 3 s).
    assert any(0 < n < acked[-1] for n in acked), f"counters did not move while the run played: {acked}"
    online = [s.value("fleetsim_devices_online") for s in scrapes]
    assert max(online) == 4
    last = run.scrapes[-1]
    # The scenario is quiet for its last seconds: the last scrape holds every event the summary counts.
    events = summary["events"]
    assert last.value("fleetsim_events_offered_total") == events["offered"]
    assert last.value("fleetsim_events_acked_total") == events["acked"]
    latency = summary["latency_ms"]
    for path in ("ack", "ack_corrected", "send_lag"):
        count = last.value("fleetsim_latency_seconds_count", path=path)
        inf = last.value("fleetsim_latency_seconds_bucket", path=path, le="+Inf")
        assert count == inf == latency[path]["count"], (path, count, latency[path])
    assert last.value("fleetsim_onboarding_seconds_count", phase="all") == latency["onboarding"]["count"]
    funnel = last.value("fleetsim_ota_events_total", status="Success") + last.value(
        "fleetsim_ota_events_total", status="Failure")
    assert funnel == 4  # every operation ended, as the plan has it


def test_local_run_metrics_move_and_end_equal_to_the_summary(local_run: tuple[LiveRun, OtlpReceiver]) -> None:
    run, _ = local_run
    _check_live_and_final(run)
    last = run.scrapes[-1]
    assert last.value("fleetsim_workers_reporting") == 1
    delivered = last.value("fleetsim_events_delivered_total")
    assert delivered == _summary(run)["events"]["delivered"]
    assert last.value("fleetsim_latency_seconds_count", path="e2e_device_t") == delivered
    labels = dict(next(iter(last.samples["fleetsim_events_acked_total"])))
    assert labels["scenario"] == "live" and labels["transport"] == "lean" and labels["target"] == "embedded"
    assert labels["run_id"].endswith("-live")


def test_local_run_pushed_the_same_numbers_over_otlp(local_run: tuple[LiveRun, OtlpReceiver]) -> None:
    run, receiver = local_run
    assert receiver.requests, "no OTLP request arrived"
    metrics = metrics_of(receiver.requests[-1])  # the push at the run's end
    summary = _summary(run)
    assert metrics["fleetsim_events_acked"].sum.data_points[0].as_int == summary["events"]["acked"]
    ack = next(p for p in metrics["fleetsim_latency_seconds"].histogram.data_points if attributes(p)["path"] == "ack")
    assert ack.count == summary["latency_ms"]["ack"]["count"]


def test_dashboard_queries_name_only_metrics_a_real_run_exposes(local_run: tuple[LiveRun, OtlpReceiver]) -> None:
    run, _ = local_run
    doc = json.loads(DASHBOARD.read_text())
    panels = [p for p in doc["panels"] if p.get("type") != "row"]
    assert len(panels) >= 6
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs and all(isinstance(e, str) and e for e in exprs)
    used = {name for e in exprs for name in re.findall(r"\bfleetsim_[a-z0-9_]+", e)}
    missing = sorted(used - run.raw_names)
    assert not missing, f"dashboard queries metrics no run exposes: {missing}"
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("offered", "latency", "lost", "online", "ota", "generator"):
        assert topic in titles, topic


def test_latency_hlog_reads_with_hdrh_log_reader(local_run: tuple[LiveRun, OtlpReceiver]) -> None:
    """The reference Python reader (hdrh.log.HistogramLogReader) reads every interval of latency.hlog, tags
    included, and the intervals add up to the summary's counts per path."""
    run, _ = local_run
    summary = _summary(run)
    reader = HistogramLogReader(str(run.run_dir / "latency.hlog"), HdrHistogram(1, 3_600_000_000, 3))
    per_tag: dict[str, int] = {}
    intervals = 0
    while True:
        hist = reader.get_next_interval_histogram()
        if hist is None:
            break
        intervals += 1
        tag = hist.get_tag() or ""
        per_tag[tag] = per_tag.get(tag, 0) + hist.get_total_count()
    reader.close()
    assert intervals >= 5
    assert reader.get_start_time_sec() > 1_600_000_000
    assert per_tag["ack"] == summary["latency_ms"]["ack"]["count"]
    assert per_tag["e2e"] == summary["latency_ms"]["e2e"]["count"]


def test_master_with_two_workers_serves_the_merged_view(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    run = run_live(tmp_path, ["--processes", "2"])
    _check_live_and_final(run)
    assert run.scrapes[-1].value("fleetsim_workers_reporting") == 2


def test_plain_locust_serves_metrics_from_the_env_var(tmp_path: Path) -> None:
    """`FLEETSIM_METRICS_PORT=... locust -f locustfile.py` (the locustfile option) against `fleetsim backend`."""
    import sys

    from simulator.generator.backend_process import BackendProcess

    require_service("mosquitto", binary="mosquitto")
    scenario = tmp_path / "live.yaml"
    scenario.write_text(SCENARIO)
    port = free_port()
    with BackendProcess(tmp_path / "backend") as backend:
        assert backend.info is not None
        env = {"FLEETSIM_BACKEND_INFO": str(tmp_path / "backend" / "backend.json"), "FLEETSIM_SCENARIO":
               str(scenario), "FLEETSIM_STATE_DIR": str(tmp_path / "gen"), "FLEETSIM_METRICS_PORT": str(port)}
        run = scrape_process(tmp_path, [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
                                        "--only-summary"], port, env)
    _check_live_and_final(run)


def test_bad_metrics_flags_are_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    from tests.integration.engine.conftest import run_fleetsim

    require_service("mosquitto", binary="mosquitto")
    scenario = tmp_path / "live.yaml"
    scenario.write_text(SCENARIO)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = {
            "--metrics-port=http": "--metrics-port: expected PORT or HOST:PORT, got 'http'",
            "--metrics-port=70000": "--metrics-port: port 70000 out of range",
            "--otlp=ftp://x": "--otlp: expected an http(s) URL",
            f"--metrics-port={port}": f"--metrics-port: cannot listen on 127.0.0.1:{port}",
        }
        for flag, message in cases.items():
            proc = run_fleetsim(["run", str(scenario), flag, "--quiet", "--results", str(tmp_path / "r"),
                                 "--state-dir", str(tmp_path / "st")], cwd=tmp_path, timeout=120)
            assert proc.returncode == 2, (flag, proc.stderr)
            assert "Traceback" not in proc.stderr
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("fleetsim run:")]
            assert len(lines) == 1 and message in lines[0], (flag, proc.stderr)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
