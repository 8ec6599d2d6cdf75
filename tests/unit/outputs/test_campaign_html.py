"""report.html's campaign section, from a CampaignReport's JSON (pure)."""

from __future__ import annotations

from simulator.metrics.campaign import ResponderLog, campaign_report
from simulator.metrics.convergence import BackendOperation
from simulator.outputs.campaign_html import campaign_section
from simulator.outputs.campaign_lines import campaign_lines


def _report() -> dict[str, object]:
    log = ResponderLog("dev-a")
    log.request("Update", "u1", 10.0)
    log.published("u1", "Acknowledged", "", 10.001)
    log.acked("u1", "Acknowledged", 10.004)
    log.published("u1", "Success", "", 12.0)
    log.acked("u1", "Success", 12.002)
    report = campaign_report(log.records(), end=14.0, driver="edgehog", max_in_progress=10,
                             backend=[BackendOperation("dev-a", "u1", "DOWNLOADING")],
                             backend_status="FINISHED/SUCCESS")
    assert campaign_lines(report)[-1] == "    DIVERGED dev-a u1: backend DOWNLOADING, device sent Success"
    return report.to_json()


def test_section_lists_latency_slots_and_diverged_operations() -> None:
    html = campaign_section(_report())
    assert "<h2>Campaign (edgehog driver, FINISHED/SUCCESS)</h2>" in html
    assert "<td>request → Acknowledged</td><td>1</td><td>4.0</td>" in html
    assert "<svg" in html and "max_in_progress" in html
    assert "<b>1 diverged</b>" in html
    assert "<td>dev-a</td><td>u1</td><td>DOWNLOADING </td><td>Success </td>" in html


def test_no_section_without_campaign_metrics() -> None:
    assert campaign_section(None) == ""
