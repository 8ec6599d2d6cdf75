"""Arrival models: exact intended offsets (docs/design.md principle 2), the output contract, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.arrival import (
    MAX_ARRIVALS,
    burst,
    constant,
    expected_arrivals,
    poisson,
    ramping,
    schedule,
    validate,
)
from simulator.scenario.model import ArrivalSpec, RampStage


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_constant_exact_grid() -> None:
    out = schedule(ArrivalSpec("constant", rate=4.0, start=1.0), 3.0, rng())
    assert out.dtype == np.float64
    assert out.tolist() == [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75]  # 3.0 itself is excluded


def test_constant_count_cap_and_empty_window() -> None:
    assert schedule(ArrivalSpec("constant", rate=10.0, count=3), 60.0, rng()).tolist() == [0.0, 0.1, 0.2]
    assert schedule(ArrivalSpec("constant", rate=1.0, start=5.0), 5.0, rng()).size == 0


def test_constant_is_start_plus_n_over_rate_not_accumulated() -> None:
    out = schedule(ArrivalSpec("constant", rate=3.0), 1000.0, rng())
    assert out.size == 3000 and out[2999] == 2999 / 3.0  # no drift from summing 1/3 three thousand times


def test_poisson_exact_from_seed() -> None:
    spec = ArrivalSpec("poisson", rate=2.0, start=0.5)
    out = schedule(spec, 20.0, rng(42))
    gaps = np.random.default_rng(42).standard_exponential(out.size + 1) / 2.0
    expected = 0.5 + np.cumsum(gaps)
    assert out.tolist() == expected[: out.size].tolist()
    assert expected[out.size] >= 20.0  # the next one would fall after the run
    assert schedule(spec, 20.0, rng(42)).tolist() == out.tolist()  # same seed, same plan


def test_poisson_long_run_mean_rate_and_cap() -> None:
    out = schedule(ArrivalSpec("poisson", rate=5.0), 2000.0, rng(1))
    assert abs(out.size - 10_000) < 5 * math.sqrt(10_000)
    assert np.all(np.diff(out) >= 0) and out[0] >= 0 and out[-1] < 2000.0
    assert schedule(ArrivalSpec("poisson", rate=5.0, count=4), 2000.0, rng(1)).tolist() == out[:4].tolist()


def test_ramping_up_from_zero_is_the_square_root_law() -> None:
    # rate 0 -> 2/s over 10 s: integral 0.1 t^2, so the n-th arrival is at sqrt(10 n)
    out = schedule(ArrivalSpec("ramping", start_rate=0.0, stages=(RampStage(10.0, 2.0),)), 60.0, rng())
    assert out.size == 10
    np.testing.assert_allclose(out, np.sqrt(10.0 * np.arange(1, 11)), rtol=1e-12)
    assert out[-1] == 10.0


def test_ramping_hold_and_down_and_start_offset() -> None:
    spec = ArrivalSpec("ramping", start=2.0, start_rate=2.0,
                       stages=(RampStage(3.0, 2.0), RampStage(2.0, 0.0)))
    out = schedule(spec, 60.0, rng())
    # hold 2/s for 3 s from t=2: 2.5, 3.0, ..., 5.0; then 2 -> 0 over 2 s (area 2): tau = 2 - sqrt(4 - 2m)
    hold = [2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    down = [5.0 + 2.0 - math.sqrt(4.0 - 2.0 * m) for m in (1, 2)]
    np.testing.assert_allclose(out, hold + down, rtol=1e-12)
    assert out[-1] == 7.0


def test_ramping_is_cut_at_duration_and_count() -> None:
    spec = ArrivalSpec("ramping", start_rate=1.0, stages=(RampStage(100.0, 1.0),))
    assert schedule(spec, 10.0, rng()).tolist() == [float(n) for n in range(1, 10)]
    capped = ArrivalSpec("ramping", start_rate=1.0, count=3, stages=spec.stages)
    assert schedule(capped, 10.0, rng()).tolist() == [1.0, 2.0, 3.0]
    assert ramping.total_arrivals(spec) == 100.0


def test_burst_aligned_and_random() -> None:
    aligned = schedule(ArrivalSpec("burst", count=5, start=2.0, phase="aligned"), 10.0, rng())
    assert aligned.tolist() == [2.0] * 5
    spread = schedule(ArrivalSpec("burst", count=5, start=2.0), 10.0, rng(3))
    assert spread.tolist() == sorted((2.0 + np.random.default_rng(3).random(5)).tolist())
    near_end = schedule(ArrivalSpec("burst", count=100, start=9.5), 10.0, rng(3))
    assert near_end.size == 100 and near_end.min() >= 9.5 and near_end.max() < 10.0  # squeezed, not dropped


def test_contract_for_every_model() -> None:
    specs = [ArrivalSpec("constant", rate=3.3, start=0.2), ArrivalSpec("poisson", rate=3.3),
             ArrivalSpec("ramping", start_rate=1, stages=(RampStage(4, 9), RampStage(4, 0))),
             ArrivalSpec("burst", count=17, start=1.0)]
    for spec in specs:
        for count in (0, 5):
            out = schedule(ArrivalSpec(**{**spec.__dict__, "count": count or spec.count}), 6.0, rng())
            assert out.dtype == np.float64 and np.all(np.diff(out) >= 0)
            assert np.all((out >= 0) & (out < 6.0))
            assert count == 0 or out.size <= count


def test_validate_messages() -> None:
    assert validate(ArrivalSpec("constant", rate=1.0)) == []
    assert validate(ArrivalSpec("constant", rate=0.0)) == [
        "rate: must be > 0 operations/s for the constant model, got 0.0"]
    assert poisson.validate(ArrivalSpec("poisson", rate=math.inf))[0].startswith("rate:")
    assert burst.validate(ArrivalSpec("burst")) == [
        "count: the burst model needs count >= 1 (how many operations at once)"]
    assert ramping.validate(ArrivalSpec("ramping")) == [
        "stages: the ramping model needs at least one stage {duration, target}"]
    assert [m.split(":")[0] for m in ramping.validate(
        ArrivalSpec("ramping", start_rate=-1, stages=(RampStage(0, -2),)))] == [
        "start_rate", "stages[0].duration", "stages[0].target"]
    assert constant.validate(ArrivalSpec("constant", start=-1, count=-2, phase="odd")) == [  # type: ignore[arg-type]
        "start: must be >= 0 s, got -1", "count: must be >= 0 (0 = no cap), got -2",
        "phase: must be 'random' or 'aligned', got 'odd'"]
    assert validate(ArrivalSpec("steady")) == [  # type: ignore[arg-type]
        "model: unknown arrival model 'steady'; choose from burst, constant, poisson, ramping"]
    with pytest.raises(ValueError, match="invalid arrival spec: rate"):
        schedule(ArrivalSpec("constant", rate=-1.0), 10.0, rng())


def test_expected_arrivals() -> None:
    assert expected_arrivals(ArrivalSpec("constant", rate=2.0, start=10.0), 30.0) == 40.0
    assert expected_arrivals(ArrivalSpec("constant", rate=2.0, count=5), 30.0) == 5.0
    assert expected_arrivals(ArrivalSpec("burst", count=9), 30.0) == 9.0
    assert MAX_ARRIVALS == 10_000_000
