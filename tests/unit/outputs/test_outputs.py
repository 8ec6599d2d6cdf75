"""summary.json keys, result files, report.html (self-contained, SVG), `fleetsim report RUN`, CSV/HDR logs."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.metrics import names
from simulator.metrics.metric_table import METRICS
from simulator.metrics.run_summary import ClockOffsetSummary, RunSummary
from simulator.outputs import format_summary, results_dir, summarize, write_results
from simulator.outputs.csv_logs import read_arrival_log, read_send_log, read_timeseries
from simulator.outputs.hdrlog import read_hlog
from tests.unit.outputs.fake_run import FakeRun, make_run

LATENCY_KEYS = {"p50", "p90", "p99", "p999", "max", "count"}


def _summary(run: FakeRun) -> RunSummary:
    return summarize(
        scenario="unit",
        seed=42,
        started_at=run.recorder.start,
        duration_s=4.0,
        devices=6,
        transport="memory",
        target="embedded",
        recorder=run.recorder,
        accounting=run.accounting,
        funnel=run.funnel,
        health=run.health,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = make_run()
    out = results_dir(tmp_path / "results", "unit test/1", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    write_results(out, _summary(run), run.recorder, run.accounting, run.arrivals)
    return out


def test_results_dir_name(tmp_path: Path) -> None:
    path = results_dir(tmp_path, "happy path", 1_767_323_045.0)
    assert path.name == "20260102T030405Z-happy-path" and path.is_dir()


def test_summary_has_every_key(run_dir: Path) -> None:
    s = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "schema_version",
        "scenario",
        "seed",
        "started_at",
        "duration_s",
        "devices",
        "transport",
        "target",
        "events",
        "rate",
        "latency_ms",
        "ota",
        "generator",
        "verdict",
        "partial",
        "environment",
        "lost_reasons",
        "latency_trustworthy",
    ):
        assert key in s, key
    assert s["schema_version"] == 1 and s["seed"] == 42 and s["partial"] is False
    assert s["started_at"] == "2023-11-14T22:13:20Z"
    assert set(s["events"]) >= {"planned", "sent", "acked", "delivered", "lost", "duplicated", "reordered"}
    assert (s["events"]["planned"], s["events"]["delivered"], s["events"]["lost"]) == (39, 38, 1)
    assert set(s["rate"]) >= {"offered_eps", "acked_eps", "delivered_eps"}
    assert s["rate"]["offered_eps"] == 9.75
    for path in ("ack", "ack_corrected", "e2e", "e2e_corrected", "e2e_device_t", "send_lag"):
        assert set(s["latency_ms"][path]) >= LATENCY_KEYS, path
    assert s["latency_ms"]["ack"]["p99"] == 4.001 and s["latency_ms"]["e2e"]["count"] == 38
    assert s["latency_ms"]["e2e_device_t"]["count"] == 38  # from the join, not twice
    onboarding = s["latency_ms"]["onboarding"]
    assert set(onboarding) >= LATENCY_KEYS  # the whole connect: issue 6's latency_ms.onboarding.{p50..count}
    assert onboarding["count"] == 6 and onboarding["max"] == pytest.approx(74.0, abs=0.1)  # 20+10+5+35+4 ms
    for phase in names.ONBOARDING_PHASES:
        assert set(onboarding[phase]) >= LATENCY_KEYS
    assert set(s["ota"]) >= {"operations", "success", "failure", "by_code", "stuck", "time_to_final_ms"}
    assert set(s["ota"]["time_to_final_ms"]) >= {"p50", "p99"}
    assert (s["ota"]["success"], s["ota"]["failure"], s["ota"]["by_code"]) == (5, 1, {"InvalidBaseImage": 1})
    assert set(s["generator"]) >= {"cpu_pct", "send_lag_ms_p99", "saturated"}
    assert set(s["environment"]) >= {
        "python",
        "platform",
        "cpu_count",
        "cpu_model",
        "hostname_hash",
        "versions",
    }
    assert s["lost_reasons"] == {"publish_failed": 0, "never_acked": 0, "acked_not_arrived": 1}
    assert s["verdict"] == "lost_events"
    typed = RunSummary.from_json(s)
    assert typed.to_json() == s  # summary.json reads back to the same tree
    for spec in METRICS.values():  # every threshold metric resolves in the summary
        node: object = typed
        for part in spec.path:
            node = node[part] if isinstance(node, dict) else getattr(node, part)


def test_saturated_generator_marks_latency_untrusted() -> None:
    run = make_run(lose_last=False)
    run.health.add_cpu_sample(97.0, 10)
    s = _summary(run)
    assert s.verdict == "generator_saturated"
    assert s.latency_trustworthy is False
    assert "CPU 97% >= 90%" in str(s.latency_untrusted_reason)
    assert "WARNING: latencies are not the backend's" in format_summary(s)


def test_series_covers_the_whole_run_not_only_up_to_the_last_event() -> None:
    from simulator.metrics.series import build_series

    run = make_run(lose_last=False)
    rows = build_series(run.recorder, run.accounting, duration_s=7.2)  # events stop in second 3
    assert [r["second"] for r in rows] == list(range(8))
    assert all(r["offered"] == 0 and r["devices_online"] == 6 for r in rows[4:])
    assert len(build_series(run.recorder, run.accounting)) == 4


def test_axis_ticks_reach_past_the_largest_value() -> None:
    from simulator.outputs.svg import nice_ticks

    assert nice_ticks(0.0, 32.0, 8) == [0, 5, 10, 15, 20, 25, 30, 35]  # a 32 s run: the axis ends at 35, not 30
    assert nice_ticks(0.0, 30.0, 8)[-1] == 30
    assert nice_ticks(0.0, 154.9, 5) == [0, 50, 100, 150, 200]


def test_terminal_names_the_clock_offset_and_every_clamped_negative() -> None:
    s = _summary(make_run(lose_last=False))
    e2e = dataclasses.replace(s.latency_ms.e2e, negative=3, negative_reasons={"observer_clock_behind": 3})
    s = dataclasses.replace(s, clock_offset=ClockOffsetSummary(estimate_ms=-12.5, samples=39, observer_behind=True),
                            latency_ms=dataclasses.replace(s.latency_ms, e2e=e2e))
    text = format_summary(s)
    assert "clock: observer - generator offset estimate -12.5 ms" in text and "observer clock is behind" in text
    assert "clamped: e2e: 3 negative values recorded as 0 (observer_clock_behind 3)" in text
    assert "\nonboarding " in text and "onboarding.connect" in text
    assert "clamped:" not in format_summary(_summary(make_run(lose_last=False)))


def test_result_files_round_trip(run_dir: Path) -> None:
    run = make_run()
    sent = read_send_log(run_dir / "events.sent.csv")
    assert [(r.key, r.code) for r in sent] == [(r.key, r.code) for r in run.recorder.send_log]
    assert sent[0].sent == pytest.approx(run.recorder.send_log[0].sent, abs=1e-6)
    assert len(read_arrival_log(run_dir / "events.arrivals.csv")) == 38
    series = read_timeseries(run_dir / "timeseries.csv")
    assert [r["second"] for r in series] == [0, 1, 2, 3]
    assert sum(r["offered"] for r in series) == 39 and sum(r["lost"] for r in series) == 1
    assert sum(r["delivered"] for r in series) == 38
    assert series[0]["ack_p99_ms"] == 4.001 and series[0]["devices_online"] == 6
    totals = read_hlog(run_dir / "latency.hlog")
    assert set(totals.paths) == {"ack", "ack_corrected", "e2e", "e2e_corrected", "e2e_device_t", "send_lag"}
    assert totals.get("ack").hist.equals(run.recorder.histograms.get("ack").hist)
    text = (run_dir / "latency.hlog").read_text()
    assert text.count("Tag=ack,") == 4  # one interval per second per path
    assert "#[StartTime: 1700000000.000" in text


def test_report_is_self_contained_with_svg_charts(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 6
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"(src|href)=\"https?:", html)
    assert "Throughput: offered vs delivered" in html and "Latency distribution by path" in html
    assert "OTA funnel" in html and "Accounting" in html and "Generator health" in html
    assert "lost_events" in html
    for label in names.PATH_LABELS.values():
        if "loop_lag" not in label:
            assert label.replace(">", "&gt;") in html


def test_fleetsim_report_rebuilds_it(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    rebuilt = (run_dir / "report.html").read_text()
    assert rebuilt.count("<svg") == original.count("<svg")
    assert "polyline" in rebuilt  # the distribution curves came back from latency.hlog
    out = capsys.readouterr().out
    assert "verdict: lost_events" in out and "report.html" in out


def test_fleetsim_report_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    (tmp_path / "summary.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a directory" in err[0]
    assert "summary.json:1: not valid JSON" in err[1]


def test_malformed_send_log_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.sent.csv"
    run = make_run()
    from simulator.outputs.csv_logs import write_send_log

    write_send_log(path, run.recorder.send_log[:3])
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",0,", ",zero,", 1)
    path.write_text("\n".join(lines) + "\n")
    from simulator.errors import UsageError

    with pytest.raises(UsageError, match=r"events\.sent\.csv:3: "):
        read_send_log(path)


def test_empty_partial_run_without_observer_still_reports(tmp_path: Path) -> None:
    from simulator.clock import VirtualClock
    from simulator.metrics.recorder import MetricsRecorder

    recorder = MetricsRecorder(VirtualClock())
    s = summarize(
        scenario="empty",
        seed=1,
        started_at=recorder.start,
        duration_s=0.0,
        devices=0,
        transport="memory",
        target="embedded",
        recorder=recorder,
        partial=True,
    )
    assert s.partial is True and s.events.delivered is None and s.verdict == "ok"
    assert s.latency_ms.ack.p99 is None and s.rate.offered_eps is None
    files = write_results(tmp_path, s, recorder)
    html = files["report"].read_text()
    assert "Partial run" in html and html.count("<svg") >= 5 and "no data" in html
    assert "PARTIAL" in format_summary(s)
    assert main(["report", "-q", str(tmp_path)]) == 0


def test_summary_with_a_wrong_type_is_one_line_naming_the_field(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = _summary(make_run()).to_json()
    events = good["events"]
    assert isinstance(events, dict)
    (tmp_path / "summary.json").write_text(json.dumps({**good, "events": {**events, "lost": "many"}}))
    assert main(["report", "-q", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"fleetsim report: {tmp_path / 'summary.json'}: events.lost: expected an integer, got 'many' "
                   "(or null)"]
    (tmp_path / "summary.json").write_text(json.dumps({"schema_version": 1, "scenario": "x"}))
    assert main(["report", "-q", str(tmp_path)]) == 2
    assert "seed, started_at, started_at_epoch, duration_s, devices, transport, target: missing (required)" in (
        capsys.readouterr().err)


def test_report_names_thresholds_and_what_faults_caused(tmp_path: Path) -> None:
    from simulator.metrics.run_summary import FaultCaused, FaultRecord, RunNotes
    from simulator.outputs.thresholds import evaluate_thresholds

    run = make_run()
    s = _summary(run)
    fault = FaultRecord(kind="disconnect", at=15.0, duration=3.0, devices=6, affected=6,
                        caused=FaultCaused(errors=4, lost=1, lost_reasons={"publish_failed": 1}))
    s = dataclasses.replace(s, extra=RunNotes(broker="mosquitto", faults=(fault,)),
                            thresholds=evaluate_thresholds(s, (("ack_latency_p99_ms", "< 1"),)))
    html = write_results(tmp_path, s, run.recorder, run.accounting, run.arrivals)["report"].read_text()
    assert "<td>ack_latency_p99_ms</td><td>&lt; 1</td><td>4.001</td><td>fail</td>" in html
    assert "<td>disconnect</td><td>15</td><td>1</td><td>4</td>" in html and "broker mosquitto" in html
    back = RunSummary.from_json(json.loads((tmp_path / "summary.json").read_text()))
    assert back.faults[0].caused == fault.caused and back.thresholds == s.thresholds


def test_the_embedded_brokers_tls_is_in_the_summary_the_console_and_the_report(tmp_path: Path) -> None:
    from simulator.metrics.run_summary import RunNotes

    run = make_run()
    s = dataclasses.replace(_summary(run), extra=RunNotes(broker="mosquitto", broker_label="mosquitto 2.0.11",
                                                          broker_tls="astarte"))
    html = write_results(tmp_path, s, run.recorder, run.accounting, run.arrivals)["report"].read_text()
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["extra"]["broker_tls"] == "astarte"
    assert RunSummary.from_json(doc).broker_tls == "astarte"
    line = "broker: mosquitto 2.0.11, TLS as Astarte's broker (at most 1.2, no session ticket)"
    assert line in format_summary(s).splitlines()
    assert "broker mosquitto 2.0.11, TLS as Astarte&#x27;s broker (at most 1.2, no session ticket) ·" in html
    # A real Astarte's broker (its TLS is its own): nothing claimed.
    real = dataclasses.replace(s, extra=RunNotes(broker_label="the target's broker"))
    assert "broker: the target's broker" in format_summary(real).splitlines()
    assert json.loads(json.dumps(real.to_json()))["extra"]["broker_tls"] == ""


def test_results_from_seconds_on_disk_are_the_same_files(tmp_path: Path) -> None:
    """Issue 14: the recorder's and the join's seconds read back from their spools (one second at a time) give
    the same timeseries.csv, latency.hlog and report.html as the seconds all kept in memory."""
    from simulator.metrics.second_spool import SecondSpool

    files = {}
    for name, spooled in (("memory", False), ("disk", True)):
        run = make_run()
        if spooled:
            run.recorder.spool_seconds(SecondSpool(hold=1))
            run.accounting.spool = SecondSpool(hold=1)
            for second in sorted(run.accounting.seconds):
                run.accounting.spool.add(second, run.accounting.seconds.pop(second))
            assert run.recorder.spool is not None and run.recorder.spool.spilled >= 2
            assert run.accounting.spool.spilled >= 2 and not run.accounting.seconds
        (tmp_path / name).mkdir()
        files[name] = write_results(tmp_path / name, _summary(run), run.recorder, run.accounting, run.arrivals)
    for key in ("timeseries", "hlog", "report"):
        assert files["disk"][key].read_bytes() == files["memory"][key].read_bytes(), key
    series = read_timeseries(files["disk"]["timeseries"])
    assert [r["second"] for r in series] == [0, 1, 2, 3] and sum(r["delivered"] for r in series) == 38
    html = files["disk"]["report"].read_text()
    assert "Throughput: offered vs delivered" in html and "Latency percentiles over time" in html
