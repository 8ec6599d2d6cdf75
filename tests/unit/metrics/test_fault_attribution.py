"""Errors and losses inside an injected fault's window are the fault's (issue 15 item 5), not the backend's."""

from __future__ import annotations

from simulator.metrics.fault_attribution import IN_FLIGHT_S, RECOVERY_GRACE_S, FaultWindow, attribute, window
from simulator.metrics.health import BACKEND_ERRORS, LOST_EVENTS, OK, verdict
from simulator.records import SendRecord


def _send(device: str, n: int, when: float, *, error: str | None = None, sent: bool = True) -> SendRecord:
    return SendRecord((device, "u", "Downloading", n, 0), intended=when, sent=when if sent else None,
                      t_ms=None, acked=None if error else when + 0.001, error=error)


def test_window_covers_the_fault_its_recovery_and_in_flight_publishes() -> None:
    w = window(100.0, 103.0, 0.5, frozenset({"a"}))
    assert w is not None and (w.start, w.end) == (100.0 - IN_FLIGHT_S, 103.0 + 0.5 + RECOVERY_GRACE_S)
    assert window(None, None, 0.0, None) is None  # a fault that never ran holds nothing


def test_only_the_hit_devices_inside_the_window_count_against_the_fault() -> None:
    sends = [
        _send("a", 1, 101.0, error="disconnected", sent=False),  # hit device, inside: the fault's
        _send("a", 2, 102.5, error="disconnected", sent=False),  # idem
        _send("b", 1, 101.0, error="disconnected", sent=False),  # device not hit: the backend's
        _send("a", 3, 120.0, error="disconnected", sent=False),  # after the window: the backend's
        _send("a", 4, 101.2),  # delivered: nothing to count
    ]
    lost = [(r.key, "publish_failed") for r in sends if r.error]
    faults = attribute([FaultWindow(100.0, 104.0, frozenset({"a"})), None], sends, lost)
    first, never_ran = faults.per_fault
    assert (first.errors, first.lost, dict(first.lost_reasons)) == (2, 2, {"publish_failed": 2})
    assert (never_ran.window, never_ran.errors, never_ran.lost) == (None, 0, 0)
    assert (faults.errors, faults.lost) == (2, 2)


def test_an_event_counts_against_one_fault_only() -> None:
    sends = [_send("a", 1, 101.0, error="disconnected", sent=False)]
    both = attribute([FaultWindow(100.0, 104.0, None), FaultWindow(100.5, 102.0, None)], sends,
                     [(sends[0].key, "publish_failed")])
    assert [a.lost for a in both.per_fault] == [1, 0] and both.lost == 1


def test_the_verdict_does_not_blame_the_backend_for_what_the_scenario_caused() -> None:
    before = verdict(send_lag_p99_ms=1.0, cpu_pct=10.0, loop_lag_p99_ms=1.0, errors=92, offered=1587, lost=92,
                     planned=1587)
    assert before.status == LOST_EVENTS and any("publish/ack errors" in r for r in before.reasons)
    after = verdict(send_lag_p99_ms=1.0, cpu_pct=10.0, loop_lag_p99_ms=1.0, errors=92, offered=1587, lost=92,
                    planned=1587, fault_errors=92, fault_lost=92)
    assert after.status == OK
    assert after.reasons == ["injected faults caused 92 lost events and 92 publish/ack errors "
                             "(extra.faults[].caused)"]
    outside = verdict(send_lag_p99_ms=1.0, cpu_pct=10.0, loop_lag_p99_ms=1.0, errors=100, offered=1000, lost=0,
                      planned=1000, fault_errors=50)
    assert outside.status == BACKEND_ERRORS and "50 publish/ack errors" in outside.reasons[0]
