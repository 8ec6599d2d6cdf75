"""Campaign metrics and state convergence from device traces (pure, no clock)."""

from __future__ import annotations

from simulator.metrics.campaign import ResponderLog, campaign_report, slots_per_second
from simulator.metrics.convergence import BackendOperation, converge


def _log() -> ResponderLog:
    log = ResponderLog("dev-a")
    log.request("Update", "u1", 100.0)
    log.published("u1", "Acknowledged", "", 100.001)
    log.acked("u1", "Acknowledged", 100.010)
    log.request("Update", "u1", 100.5)  # the backend re-sent the same uuid
    log.published("u1", "Success", "", 102.9)
    log.acked("u1", "Success", 103.0)
    log.request("Update", "u2", 101.0)  # a second Update while u1 runs: refused at once
    log.published("u2", "Failure", "UpdateAlreadyInProgress", 101.001)
    log.acked("u2", "Failure", 101.002)
    log.request("Cancel", "u3", 104.0)  # unknown uuid: not an operation of the campaign
    log.published("u3", "Failure", "InternalError", 104.001)
    return log


def test_report_from_device_traces() -> None:
    records = _log().records()
    report = campaign_report(records, end=105.0, driver="none")
    assert (report.operations, report.answered) == (2, 2)
    assert report.request_to_ack.count == 1 and report.request_to_ack.p50_ms == 10.0
    assert report.request_to_final.count == 2 and report.request_to_final.max_ms == 3000.0
    assert report.campaign_duration_s == 3.0
    assert (report.retries_seen, report.operations_retried) == (1, 1)
    assert report.timeouts is None and report.convergence is None
    doc = report.to_json()
    assert doc["in_flight_per_s"] == [1, 2, 1, 0, 0] and doc["over_limit"] is False


def test_slots_count_operations_between_request_and_final() -> None:
    records = _log().records()
    assert slots_per_second(records, end=105.0) == (1, 2, 1, 0, 0)  # u1 in [100, 102.9), u2 in [101, 101.001)


def test_over_limit_is_flagged() -> None:
    report = campaign_report(_log().records(), end=105.0, driver="embedded", max_in_progress=1, backend=[])
    assert report.peak_in_flight == 2 and report.over_limit


def test_convergence_lists_a_regression_with_both_states() -> None:
    records = _log().records()
    backend = [BackendOperation("dev-a", "u1", "DOWNLOADING"),  # Success overwritten by a late Downloading
               BackendOperation("dev-a", "u2", "FAILURE", "UPDATE_ALREADY_IN_PROGRESS"),
               BackendOperation("dev-b", "u9", "PENDING")]
    c = converge(records, backend)
    assert (c.checked, c.converged, c.diverged_count, c.never_reached, c.unknown_to_backend) == (2, 1, 1, 1, 0)
    d = c.diverged[0]
    assert (d.device, d.uuid, d.backend_status, d.device_status) == ("dev-a", "u1", "DOWNLOADING", "Success")
    assert c.never_reached_examples == ("dev-b/u9",)


def test_timeouts_count_the_backends_request_timeouts() -> None:
    backend = [BackendOperation("dev-a", "u1", "Success"), BackendOperation("dev-x", "u7", "", timed_out=True),
               BackendOperation("dev-y", "u8", "FAILURE", "REQUEST_TIMEOUT")]
    report = campaign_report(_log().records(), end=105.0, backend=backend,
                             timeout_codes=("RequestTimeout", "REQUEST_TIMEOUT"))
    assert report.timeouts == 2
    assert report.convergence is not None and report.convergence.unknown_to_backend == 1  # u2
