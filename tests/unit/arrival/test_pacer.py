"""The absolute-schedule pacer on a virtual clock: waits from start + offset, lag counted, late dropped."""

from __future__ import annotations

import pytest

from simulator.arrival.pacer import Pacer, PacerStats
from simulator.clock import VirtualClock


def test_waits_are_computed_from_the_start_not_from_the_last_send() -> None:
    clock = VirtualClock(start=100.0)
    pacer = Pacer(clock, start_monotonic=100.0)
    sent_at = []
    for offset in (0.0, 0.5, 1.0, 1.5):
        clock.advance(pacer.wait_time(offset))
        clock.advance(0.2)  # each send takes 200 ms: a sleep-after-send loop would drift by 0.2 s per send
        sent_at.append(clock.monotonic())
        pacer.record(offset, clock.monotonic())
    assert sent_at == pytest.approx([100.2, 100.7, 101.2, 101.7])
    stats = pacer.stats
    assert (stats.sent, stats.late, stats.dropped) == (4, 4, 0)
    assert stats.max_lag_s == pytest.approx(0.2) and stats.lag_sum_s == pytest.approx(0.8)
    assert stats.mean_lag_s == pytest.approx(0.2)


def test_wait_time_never_negative_and_exact() -> None:
    clock = VirtualClock(start=10.0)
    pacer = Pacer(clock, start_monotonic=10.0)
    assert pacer.wait_time(2.5) == 2.5
    assert pacer.intended(2.5) == 12.5
    clock.set(13.0)
    assert pacer.wait_time(2.5) == 0.0
    assert pacer.lag(2.5) == 0.5


def test_record_returns_lag_and_counts_on_time_sends() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock, start_monotonic=0.0)
    assert pacer.record(1.0, 1.0) == 0.0  # on time
    assert pacer.record(2.0, 1.9) == 0.0  # early never counts as negative lag
    assert pacer.record(3.0, 3.0005) == pytest.approx(0.0005)  # under the 1 ms "late" threshold
    assert pacer.record(4.0, 4.25) == pytest.approx(0.25)
    assert pacer.stats == PacerStats(sent=4, late=1, dropped=0, max_lag_s=pytest.approx(0.25),
                                     lag_sum_s=pytest.approx(0.2505))


def test_should_drop_beyond_max_lag() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock, start_monotonic=0.0, max_lag_s=1.0)
    clock.set(5.0)
    assert pacer.should_drop(4.0) is False  # exactly 1 s late: still sent
    assert pacer.should_drop(3.9) is True
    assert pacer.should_drop(0.0) is True
    assert pacer.should_drop(6.0) is False  # not due yet
    assert pacer.stats.dropped == 2 and pacer.stats.sent == 0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="max_lag_s"):
        Pacer(VirtualClock(), 0.0, max_lag_s=-1.0)
    with pytest.raises(ValueError, match="late_after_s"):
        Pacer(VirtualClock(), 0.0, late_after_s=float("nan"))
