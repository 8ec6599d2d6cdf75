"""HDR -> classic buckets: every recorded value lands in the bucket a brute-force count puts it in."""

from __future__ import annotations

import random

import pytest

from simulator.metrics.histograms import LatencyHistogram
from simulator.telemetry.buckets import LATENCY_BOUNDS_S, ClassicHistogram, to_classic


def _hist(values_us: list[int]) -> LatencyHistogram:
    hist = LatencyHistogram("ack")
    for us in values_us:
        hist.record_us(us)
    return hist


def test_empty_histogram_has_zero_buckets() -> None:
    out = to_classic(LatencyHistogram("ack").hist)
    assert out.count == 0 and out.sum_s == 0.0
    assert out.cumulative == (0,) * (len(LATENCY_BOUNDS_S) + 1)


def test_buckets_match_a_brute_force_count_away_from_bounds() -> None:
    rng = random.Random(7)
    # Log-uniform from 1 us to 20 min: every bucket gets some, +Inf too.
    values = [int(10 ** rng.uniform(0, 9.08)) for _ in range(5000)]
    out = to_classic(_hist(values).hist)
    assert out.count == len(values)
    assert out.cumulative[-1] == len(values)
    for bound, got in zip(LATENCY_BOUNDS_S, out.cumulative, strict=False):
        limit_us = bound * 1e6
        below = sum(1 for v in values if v <= limit_us * 0.999)  # surely under the bound
        maybe = sum(1 for v in values if v <= limit_us * 1.001)  # within HDR's 0.1% of the bound
        assert below <= got <= maybe, (bound, below, got, maybe)
    assert list(out.cumulative) == sorted(out.cumulative)  # cumulative never goes down


def test_a_value_is_never_put_below_its_bucket() -> None:
    """1.0005 ms is above the 1 ms bound: it must not be counted as <= 1 ms (latency is never flattered)."""
    out = to_classic(_hist([1001, 1002, 999]).hist, bounds_s=(0.001,))
    assert out.cumulative == (1, 3)


def test_sum_is_the_hdr_mean_times_count() -> None:
    values = [500, 1500, 2_500_000]
    hist = _hist(values)
    out = to_classic(hist.hist)
    assert out.sum_s == pytest.approx(sum(values) / 1e6, rel=1e-3)
    assert out.min_s == pytest.approx(500e-6, rel=1e-3) and out.max_s == pytest.approx(2.5, rel=1e-3)


def test_per_bucket_counts_add_up() -> None:
    out = ClassicHistogram(bounds_s=(0.1, 1.0), cumulative=(2, 5, 6), count=6, sum_s=3.0)
    assert out.per_bucket() == (2, 3, 1)


def test_bounds_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascend"):
        to_classic(_hist([1]).hist, bounds_s=(1.0, 0.5))
