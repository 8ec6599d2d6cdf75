"""The figures of bench/campaign_capacity.py from its runs: the play order, the per-pair differences, their
medians, the floor's median and the goals the table judges. Pure: no I/O, no simulator import.

A run is the child's result dict (bench/campaign_capacity.py `_run`): `play_cpu_s`, `operations`,
`dropped_operations`, `lost`, `cpu_ms_per_operation`, plus `pair` and `size` ("small" / "large") set by the
parent; a failed run carries `error` and is a missing sample, never a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.common import median, ratio

__all__ = [
    "BEHIND_LAG_P99_MS",
    "EVENTS_PER_OPERATION",
    "GOALS",
    "ISSUE_BASE",
    "baseline_ratio_block",
    "behind_schedule",
    "difference_block",
    "floor_block",
    "goals_block",
    "idle_cpu_ms_per_s",
    "is_issue_base",
    "pair_difference",
    "play_order",
]

EVENTS_PER_OPERATION = 26  # Acknowledged, 11 Downloading, 11 Deploying, Deployed, Rebooting, Success
# Issue 16's done-when: <= 6.5 ms of generator CPU per rebooting OTA operation at 1,000 devices (>= 150
# operations/s per core); 0 events lost at 90% of that rate; at 150% the run reports late/dropped operations and
# loses nothing. None: reported, no goal.
GOALS: dict[str, str | None] = {
    "cpu_ms_per_operation": "<= 6.5",
    "operations_per_core_s": ">= 150",
    "engine_vs_floor_cpu": None,
    "lost_at_0.9": "<= 0",
    "lost_at_1.5": "<= 0",
    # The generator must say when it falls behind: at 1.5x its capacity it cannot keep the schedule, so a
    # count of 0 here means the capacity was understated or the lateness went unreported.
    "late_or_dropped_at_1.5": "> 0",
    "send_lag_p99_ms_at_1.5": None,
    "pairs_behind_schedule": "<= 0",
    # The issue's title, "halve the CPU per operation", as a ratio to the code it measured, on the machine at
    # hand: its 6.5 ms goal was set against 11.0-13.3 ms on the machine it was filed from (0.49-0.59 of them),
    # and the milliseconds move with the machine: ea5c1d6 gave 9.05 ms (n = 3, 2026-12-07T16:35Z, an AMD EPYC
    # VM), 7ee1af5, a few commits later, 17.7 ms (n = 1, 18:44Z, an Intel Xeon 2.8 GHz
    # VM on which a pure-Python loop ran 1.8-3x slower); the ratio of two trees in one invocation moves much less.
    "engine_vs_issue_base_cpu": "<= 0.5",
}
# main when issue 16 was filed: the parent of its first commit (8768ebd, bench/campaign_capacity.py). Its
# simulator/ plays the campaign through this benchmark's child unchanged (`--baseline-rev d260b63`).
ISSUE_BASE = "d260b6344cc870f81d2f046700f7722362405e13"
# A measuring run whose send lag p99 passed this (or with late or dropped operations) played a starved
# generator: starved, it wakes less often and handles more packets per wake-up, so it costs less per operation
# and flatters the figure. 1,000 devices, 200 and 400 operations at 40/s, three invocations at load 2.5-5.4
# (bench/campaign_capacity.py --devices 1000 --operations 200,400 --repeat 1): runs on schedule had p99 30, 84
# and 113 ms; starved ones 715, 777 and 1,859 ms (connect p50 0.6-1.1 s), and their pairs gave 4.45 and 5.9 ms
# per operation where the one with its large run on schedule gave 12.1.
BEHIND_LAG_P99_MS = 250.0


def play_order(repeat: int, baseline: bool) -> list[tuple[int, str, str]]:
    """(pair, system, size) in play order: per pair small then large, then the bare-paho floor; with a
    baseline, both trees play each size back to back, the first of the two swapping every pair, so a slow
    drift of a shared machine (another helper's job starting) lands on both trees and both sizes alike."""
    order: list[tuple[int, str, str]] = []
    for pair in range(repeat):
        systems = ["engine", "baseline"] if baseline else ["engine"]
        if baseline and pair % 2 == 0:
            systems.reverse()
        for size in ("small", "large"):
            order += [(pair, system, size) for system in systems]
        order.append((pair, "floor", ""))
    return order


def _ok(run: dict[str, Any] | None) -> bool:
    return run is not None and "error" not in run and "play_cpu_s" in run


def _played(run: dict[str, Any]) -> int:
    """Operations that played: dropped ones (the generator was too far behind) cost almost nothing."""
    return int(run["operations"]) - int(run.get("dropped_operations") or 0)


def behind_schedule(run: dict[str, Any]) -> bool:
    """Did this run fall behind its plan (late or dropped operations, or send lag p99 > BEHIND_LAG_P99_MS)?"""
    if not _ok(run):
        return False
    p99 = (run.get("send_lag_ms") or {}).get("p99")
    return bool(run.get("late_operations") or run.get("dropped_operations")
                or (p99 is not None and p99 > BEHIND_LAG_P99_MS))


def pair_difference(small: dict[str, Any] | None, large: dict[str, Any] | None,
                    cpu_key: str = "play_cpu_s") -> float | None:
    """ms of CPU per operation from one pair: (CPU_large - CPU_small) / (ops_large - ops_small). What both
    sizes pay alike (the fleet's stop, the drain, the parent's wait for the last acks) cancels; None when a
    run failed or the sizes do not differ. `cpu_key`: the generator's `play_cpu_s` or the backend's
    `backend_cpu_s` (bench/campaign_capacity.py backend_cpu_seconds)."""
    if small is None or large is None or not (_ok(small) and _ok(large)):
        return None
    if small.get(cpu_key) is None or large.get(cpu_key) is None:
        return None
    d_ops = _played(large) - _played(small)
    if d_ops <= 0:
        return None
    return round((float(large[cpu_key]) - float(small[cpu_key])) / d_ops * 1000, 3)


def _round3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _pairs(runs: Sequence[dict[str, Any]]) -> dict[int, dict[str, dict[str, Any]]]:
    pairs: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        if "pair" in run and run.get("size") in ("small", "large"):
            pairs.setdefault(int(run["pair"]), {})[str(run["size"])] = run
    return pairs


def difference_block(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The CPU per operation of one tree: the median over the pairs of each pair's difference, with n (pairs
    that gave one), every pair's value and every run's own ms per operation (fixed costs included)."""
    pairs = _pairs(runs)
    values = [pair_difference(p.get("small"), p.get("large")) for _, p in sorted(pairs.items())]
    backend_pairs = [pair_difference(p.get("small"), p.get("large"), "backend_cpu_s") for _, p in sorted(pairs.items())]
    behind = [any(behind_schedule(r) for r in p.values()) for _, p in sorted(pairs.items())]
    on_schedule = [v for v, b in zip(values, behind, strict=True) if not b]
    ms = median(values)
    ms_on_schedule = median(on_schedule)
    idle_median = median(r.get("idle_cpu_ms_per_s") for r in runs if _ok(r))
    idle = None if idle_median is None else round(idle_median, 3)
    rate = median(r.get("rate") for r in runs if _ok(r))
    return {
        "cpu_ms_per_operation": None if ms is None else round(ms, 3),
        "n": sum(1 for v in values if v is not None),
        "pairs": values,
        # Pairs with a run behind its plan: their difference is a starved generator's (BEHIND_LAG_P99_MS).
        "pairs_behind": behind,
        "behind_pairs": sum(1 for v, b in zip(values, behind, strict=True) if b and v is not None),
        "cpu_ms_per_operation_on_schedule": None if ms_on_schedule is None else round(ms_on_schedule, 3),
        "n_on_schedule": sum(1 for v in on_schedule if v is not None),
        "cpu_us_per_otaevent": None if ms is None else round(ms * 1000 / EVENTS_PER_OPERATION, 3),
        "operations_per_core_s": ratio(1000.0, ms),
        "cpu_ms_per_operation_each_run": [r.get("cpu_ms_per_operation") for r in runs],
        "small_run_ms": [p["small"].get("cpu_ms_per_operation") if "small" in p else None
                         for _, p in sorted(pairs.items())],
        "large_run_ms": [p["large"].get("cpu_ms_per_operation") if "large" in p else None
                         for _, p in sorted(pairs.items())],
        # What the connected fleet costs per second doing nothing (each run's idle tail, the scenario's graceful
        # stop): at the measuring rate r it adds idle / r to the figure above, at capacity idle / capacity.
        "idle_cpu_ms_per_s": idle,
        "idle_n": sum(1 for r in runs if _ok(r) and r.get("idle_cpu_ms_per_s") is not None),
        "idle_ms_per_operation_at_rate": None if idle is None or not rate else round(idle / rate, 3),
        # The backend's CPU (Pairing API, collector, mosquitto) per operation, by the same pair differences: what
        # the generator's figure leaves out, and why a run near capacity on 2 shared cores waits on the backend.
        "backend_cpu_ms_per_operation": _round3(median(backend_pairs)),
        "backend_pairs": backend_pairs,
        "lost": sum(int(r.get("lost") or 0) for r in runs if _ok(r)),
        "failed_runs": sum(1 for r in runs if not _ok(r)),
    }


def floor_block(floors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Bare paho's CPU per operation: the median over its runs, with n and each run's value."""
    values = [f.get("cpu_ms_per_operation") if "error" not in f else None for f in floors]
    ms = median(values)
    return {"cpu_ms_per_operation": None if ms is None else round(ms, 3),
            "n": sum(1 for v in values if v is not None), "each_run": values, "runs": list(floors)}


def idle_cpu_ms_per_s(samples: Sequence[tuple[float, float]], after_s: float) -> float | None:
    """ms of CPU per second of the connected fleet with nothing to play: the slope of the (time s, CPU s)
    samples from the first at or after `after_s` (the last acknowledgement plus a settle) to the last one
    (taken before the fleet's stop). None with fewer than two samples or under a second between them."""
    tail = [(t, cpu) for t, cpu in samples if t >= after_s]
    if len(tail) < 2 or tail[-1][0] - tail[0][0] < 1.0:
        return None
    (t0, c0), (t1, c1) = tail[0], tail[-1]
    return round((c1 - c0) / (t1 - t0) * 1000, 3)


def _saturation_at(saturation: Sequence[dict[str, Any]], factor: float) -> dict[str, Any]:
    return next((s for s in saturation if s.get("capacity_factor") == factor and "error" not in s), {})


def is_issue_base(rev: str) -> bool:
    """Does `rev` (any name git knows) resolve to ISSUE_BASE? False outside a git checkout."""
    if not rev:
        return False
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                         capture_output=True, text=True, check=False)
    return out.returncode == 0 and out.stdout.strip() == ISSUE_BASE


def baseline_ratio_block(engine: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """This tree's CPU per operation over the baseline tree's, pair by pair: the two trees play each pair's
    sizes right beside each other (play_order), so each pair's ratio compares runs made under the same load.
    The value is the median of the pairs' ratios, with n and each pair's ratio."""
    mine, theirs = _pairs(engine), _pairs(baseline)
    values: list[float | None] = []
    for pair in sorted(set(mine) & set(theirs)):
        a = pair_difference(mine[pair].get("small"), mine[pair].get("large"))
        b = pair_difference(theirs[pair].get("small"), theirs[pair].get("large"))
        values.append(ratio(a, b) if a is not None and b is not None and b > 0 else None)
    value = median(values)
    return {"value": None if value is None else round(value, 3), "n": sum(1 for v in values if v is not None),
            "pairs": values}


def goals_block(difference: dict[str, Any], floor: dict[str, Any],
                saturation: Sequence[dict[str, Any]], vs_issue_base: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
    """What the table shows, each with its value, n and goal (None where the issue sets none). The engine /
    floor ratio is of the two medians; its n is the smaller of their two. `vs_issue_base` is
    baseline_ratio_block against ISSUE_BASE (None: not measured in this invocation)."""
    low, high = _saturation_at(saturation, 0.9), _saturation_at(saturation, 1.5)

    def one(key: str, value: Any, n: int, **extra: Any) -> dict[str, Any]:
        return {"value": value, "n": n if value is not None else 0, "goal": GOALS[key], **extra}

    late = high.get("late_operations")
    dropped = high.get("dropped_operations")
    ms, n = difference.get("cpu_ms_per_operation"), difference.get("n", 0)
    return {
        "cpu_ms_per_operation": one("cpu_ms_per_operation", ms, n),
        "operations_per_core_s": one("operations_per_core_s", difference.get("operations_per_core_s"), n),
        "engine_vs_floor_cpu": one("engine_vs_floor_cpu", ratio(ms, floor.get("cpu_ms_per_operation")),
                                   min(n, floor.get("n", 0))),
        "lost_at_0.9": one("lost_at_0.9", low.get("lost"), 1, rate=low.get("rate")),
        "lost_at_1.5": one("lost_at_1.5", high.get("lost"), 1, rate=high.get("rate")),
        "late_or_dropped_at_1.5": one("late_or_dropped_at_1.5", None if late is None else late + int(dropped or 0),
                                      1, rate=high.get("rate"), late=late, dropped=dropped),
        "send_lag_p99_ms_at_1.5": one("send_lag_p99_ms_at_1.5", (high.get("send_lag_ms") or {}).get("p99"), 1,
                                      rate=high.get("rate")),
        "pairs_behind_schedule": one("pairs_behind_schedule", difference.get("behind_pairs") if n else None, n),
        "engine_vs_issue_base_cpu": one("engine_vs_issue_base_cpu", (vs_issue_base or {}).get("value"),
                                        int((vs_issue_base or {}).get("n") or 0), base=ISSUE_BASE[:7],
                                        pairs=(vs_issue_base or {}).get("pairs")),
    }
