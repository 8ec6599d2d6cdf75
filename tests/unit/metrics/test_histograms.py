"""HDR histograms: exactness of the fast recording path, clamp-and-count, export/merge round trip."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from simulator.metrics.histograms import (
    HIGHEST_US,
    HistogramSet,
    LatencyHistogram,
    new_hdr,
    percentiles_us,
)


def _values(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    edges = [0, 1, 2, 2047, 2048, 2049, 4095, 4096, 65_535, 65_536, 1_000_000, HIGHEST_US - 1, HIGHEST_US]
    return edges + [int(rng.lognormvariate(8, 2)) % HIGHEST_US for _ in range(n)]


def test_fast_record_matches_hdrh_record_value() -> None:
    ours = LatencyHistogram("ack")
    theirs = new_hdr()
    for v in _values(5000, 1):
        ours.record_us(v)
        assert theirs.record_value(v)
    assert ours.hist.equals(theirs)
    assert ours.hist.get_max_value() == theirs.get_max_value()
    assert ours.hist.get_min_value() == theirs.get_min_value()


def test_vectorised_percentiles_match_hdrh() -> None:
    hist = LatencyHistogram("ack")
    for v in _values(3000, 2):
        hist.record_us(v)
    pcts = (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0)
    ours = percentiles_us(hist.hist, pcts)
    for p in pcts:
        assert ours[p] == hist.hist.get_value_at_percentile(p), p


@pytest.mark.parametrize("word_size", [2, 4])
def test_vectorised_percentiles_match_hdrh_for_other_word_sizes(word_size: int) -> None:
    """A histogram with narrower counters (another tool's) takes the widening cast, same answers."""
    hist = HdrHistogram(1, HIGHEST_US, 3, word_size=word_size)
    for v in _values(3000, 3):
        hist.record_value(max(1, v))
    pcts = (0.0, 50.0, 99.0, 100.0)
    ours = percentiles_us(hist, pcts)
    for p in pcts:
        assert ours[p] == hist.get_value_at_percentile(p), p


def test_negative_and_overflow_are_clamped_and_counted() -> None:
    hist = LatencyHistogram("e2e")
    hist.record_s(-0.002, "observer_clock_behind")
    hist.record_s(-0.001, "observer_clock_behind")
    hist.record_s(0.005)
    hist.record_s(7200.0)  # 2 h > 1 h range
    assert hist.count == 4
    assert hist.negative == 2
    assert hist.negative_reasons == {"observer_clock_behind": 2}
    assert hist.overflow == 1
    assert hist.hist.get_count_at_value(0) == 2  # clamped to 0, not dropped
    summary = hist.summary_ms()
    assert summary["negative"] == 2 and summary["overflow"] == 1
    assert summary["negative_reasons"] == {"observer_clock_behind": 2}


def test_export_merge_round_trip_equals_one_histogram() -> None:
    values = _values(6000, 3)
    single = HistogramSet()
    workers = [HistogramSet() for _ in range(3)]
    for n, v in enumerate(values):
        single.get("ack").record_us(v)
        workers[n % 3].get("ack").record_us(v)
    workers[0].get("ack").record_s(-1.0, "clock")
    single.get("ack").record_s(-1.0, "clock")
    merged = HistogramSet()
    for w in workers:
        merged.add(HistogramSet.from_export(w.export()))  # through base64 strings, as between processes
    a, b = merged.get("ack"), single.get("ack")
    assert a.hist.equals(b.hist)
    assert a.count == b.count == len(values) + 1
    assert a.negative == b.negative == 1
    assert a.summary_ms() == b.summary_ms()


def test_add_into_empty_keeps_real_minimum() -> None:
    other = LatencyHistogram("ack")
    other.record_us(5000)
    empty = LatencyHistogram("ack")
    empty.add(other)
    assert empty.hist.get_min_value() == other.hist.get_min_value() > 0


def test_decode_of_foreign_geometry_is_re_recorded() -> None:
    foreign = HdrHistogram(1, 60_000_000, 2)
    foreign.record_value(1234)
    hist = LatencyHistogram.decode("ack", foreign.encode().decode("ascii"))
    assert hist.count == 1
    hist.record_us(HIGHEST_US)  # the standard geometry: 1 h fits
    assert hist.count == 2


def test_empty_summary_has_null_percentiles() -> None:
    summary = LatencyHistogram("e2e").summary_ms()
    assert summary["p99"] is None and summary["count"] == 0


def test_vectorised_mean_matches_hdrh() -> None:
    from simulator.metrics.histograms import mean_us

    hist = LatencyHistogram("ack")
    for v in _values(2000, 4):
        hist.record_us(v)
    assert mean_us(hist.hist) == pytest.approx(hist.hist.get_mean_value(), rel=1e-12)


def test_record_seconds_hot_path_matches_hdrh() -> None:
    rng = random.Random(5)
    ours = LatencyHistogram("ack")
    theirs = new_hdr()
    for _ in range(3000):
        seconds = rng.lognormvariate(-6, 2)
        ours.record_s(seconds)
        theirs.record_value(min(round(seconds * 1_000_000), HIGHEST_US))
    assert ours.hist.equals(theirs)


def test_a_released_histogram_comes_back_empty_and_records_as_new() -> None:
    from simulator.metrics.histograms import new_hdr, release_hdr

    used = LatencyHistogram("a")
    for us in (5, 700, 12_000, 3_000_000):
        used.record_us(us)
    release_hdr(used.hist)
    again = new_hdr()
    assert again is used.hist  # reused, not a fresh 23,552-counter array
    assert again.get_total_count() == 0 and again.get_max_value() == 0
    fresh = LatencyHistogram("b", again)
    fresh.record_us(42)
    reference = LatencyHistogram("c")
    reference.record_us(42)
    assert fresh.encode() == reference.encode()


def test_sealing_a_second_releases_its_live_histograms_for_the_next_seconds() -> None:
    from simulator.metrics import histograms
    from simulator.metrics.second_bucket import SecondBucket

    histograms._FREE.clear()
    totals = HistogramSet()
    bucket = SecondBucket()
    bucket.hist("ack").record_us(1_000)
    live = bucket.hists["ack"].hist
    bucket.seal(totals)
    assert len(histograms._FREE) == 1 and histograms._FREE[0] is live
    nxt = SecondBucket()
    nxt.hist("ack").record_us(2_000)
    assert nxt.hists["ack"].hist is live and live.get_total_count() == 1
    nxt.seal(totals)
    assert totals.get("ack").count == 2  # the totals were added, not aliased
    assert bucket.stats["ack"][2] == 1 and nxt.stats["ack"][2] == 1
