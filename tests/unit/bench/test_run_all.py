"""bench/run_all.py: one results file per invocation, and the README table generated from the newest one only.

No benchmark runs here: these tests read files (the repository's README and bench/results/run-*.json, or
files written to tmp_path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.run_all import (
    README,
    README_BEGIN,
    README_END,
    newest_run_file,
    readme_block,
    render_block,
    replace_readme_block,
    run_file_name,
)
from bench.summary_rows import summary_rows


def test_readme_table_is_generated_from_the_newest_run_file() -> None:
    newest = newest_run_file()
    assert newest is not None, "no bench/results/run-*.json: run `python bench/run_all.py --quick` first"
    block = readme_block(README.read_text())
    assert block is not None, f"README.md lacks the {README_BEGIN!r} ... {README_END!r} markers"
    expected = render_block(json.loads(newest.read_text()), newest.name)
    assert block == expected.strip(), (
        f"README.md's benchmark table is not {newest.name}'s: `python bench/run_all.py --table-only --readme`"
    )


def test_the_newest_run_file_is_the_latest_timestamp(tmp_path: Path) -> None:
    assert newest_run_file(tmp_path) is None
    for started in (1_800_000_000.0, 1_800_086_400.0, 1_800_000_001.0):
        (tmp_path / run_file_name(started)).write_text("{}")
    (tmp_path / "throughput.json").write_text("{}")  # a single benchmark's file is never a run file
    newest = newest_run_file(tmp_path)
    assert newest is not None and newest.name == "run-20270116T080000Z.json"  # 1_800_086_400 in UTC


def test_the_block_names_its_file_host_and_what_did_not_run() -> None:
    run = {
        "quick": True,
        "host": {"cpus": 2, "cpu_model": "AMD EPYC", "mem_gib": 23.5, "python": "3.11.7", "load_avg_1m": 1.5,
                 "at": "2026-12-06T21:00:00Z"},
        "host_at_end": {"load_avg_1m": 2.25},
        "software": {"fleetsim_commit": "abc1234", "paho-mqtt": "2.2.0", "mosquitto": "2.0.11"},
        "timings": {"throughput": {"exit": 0, "seconds": 200.0}, "pacing": {"exit": 1, "seconds": 3.0}},
        "benches": {"throughput": {"goals": {"engine/paho": {"value": 0.75, "n": 3, "devices": 1000}}}},
    }
    block = render_block(run, "run-20261206T210000Z.json")
    first = block.splitlines()[0]
    assert "bench/results/run-20261206T210000Z.json" in first and "--quick" in first
    assert "fleetsim abc1234" in first and "2 CPUs (AMD EPYC), 23.5 GiB" in first
    assert "paho 2.2.0, mosquitto 2.0.11" in first
    assert "load average 1.5 (1 min) at the start, 2.25 at the end" in first
    assert "failed: pacing" in first
    assert ("not run in this invocation: devices_per_process, latency_truth, scale_out, profile_hot_path, "
            "campaign_capacity") in first
    assert "| throughput | engine/paho events per CPU-second ratio @ 1000 devices | 0.75 | 3 | >= 0.7 | pass |" in block
    # pacing failed: its rows are '-' with n 0, never read from an older file
    assert "| pacing | send lag p99 ms @ - events/s | - | 0 | <= 5.0 | - |" in block


def _campaign_doc() -> dict[str, object]:
    """A campaign_capacity document as bench/campaign_capacity.py writes it (its `goals` block)."""
    return {
        "devices": 1000,
        "params": {"rate": 40.0, "operations": [400, 800], "repeat": 3},
        "goals": {
            "cpu_ms_per_operation": {"value": 7.1, "n": 3, "goal": "<= 6.5"},
            "operations_per_core_s": {"value": 140.845, "n": 3, "goal": ">= 150"},
            "engine_vs_floor_cpu": {"value": 0.82, "n": 3, "goal": None},
            "lost_at_0.9": {"value": 0, "n": 1, "goal": "<= 0", "rate": 126.8},
            "lost_at_1.5": {"value": 0, "n": 1, "goal": "<= 0", "rate": 211.3},
            "late_or_dropped_at_1.5": {"value": 289, "n": 1, "goal": "> 0", "rate": 211.3, "late": 289,
                                       "dropped": 0},
            "send_lag_p99_ms_at_1.5": {"value": 1363.7, "n": 1, "goal": None, "rate": 211.3},
            "pairs_behind_schedule": {"value": 1, "n": 3, "goal": "<= 0"},
            "engine_vs_issue_base_cpu": {"value": 0.62, "n": 3, "goal": "<= 0.5", "base": "d260b63",
                                         "pairs": [0.6, 0.62, 0.7]},
        },
    }


def test_campaign_capacity_rows_carry_n_goal_and_result() -> None:
    rows = [r for r in summary_rows({"campaign_capacity": _campaign_doc()}) if r["benchmark"] == "campaign_capacity"]
    by_metric = {r["metric"]: r for r in rows}
    cpu = by_metric["CPU ms per rebooting operation @ 1000 devices (400 and 800 operations at 40/s, median of pair "
                    "differences)"]
    assert (cpu["value"], cpu["n"], cpu["goal"], cpu["result"]) == (7.1, 3, "<= 6.5", False)
    per_core = by_metric["rebooting operations per generator core-second"]
    assert (per_core["value"], per_core["n"], per_core["result"]) == (140.845, 3, False)
    floor = by_metric["engine / bare-paho CPU per rebooting operation"]
    assert (floor["value"], floor["n"], floor["goal"], floor["result"]) == (0.82, 3, "", None)
    lost = by_metric["events lost @ 0.9x capacity (126.8 operations/s)"]
    assert (lost["value"], lost["n"], lost["result"]) == (0, 1, True)
    assert by_metric["events lost @ 1.5x capacity (211.3 operations/s)"]["result"] is True
    late = by_metric["late + dropped operations reported @ 1.5x capacity (211.3 operations/s)"]
    assert (late["value"], late["goal"], late["result"]) == (289, "> 0", True)
    assert by_metric["send lag p99 ms @ 1.5x capacity (211.3 operations/s)"]["value"] == 1363.7
    behind = by_metric["measuring pairs with a run behind its plan (starved: its CPU figure flatters)"]
    assert (behind["value"], behind["n"], behind["goal"], behind["result"]) == (1, 3, "<= 0", False)
    halved = by_metric["CPU per rebooting operation / the code issue 16 measured (d260b63), pair by pair, same "
                       "invocation"]
    assert (halved["value"], halved["n"], halved["goal"], halved["result"]) == (0.62, 3, "<= 0.5", False)
    assert len(rows) == 9


def test_campaign_capacity_rows_in_the_markdown_block() -> None:
    run = {"timings": {"campaign_capacity": {"exit": 0, "seconds": 540.0}},
           "benches": {"campaign_capacity": _campaign_doc()}}
    block = render_block(run, "run-20261207T160000Z.json")
    assert ("| campaign_capacity | CPU ms per rebooting operation @ 1000 devices (400 and 800 operations at 40/s, "
            "median of pair differences) | 7.1 | 3 | <= 6.5 | FAIL |") in block
    assert "| campaign_capacity | events lost @ 0.9x capacity (126.8 operations/s) | 0 | 1 | <= 0 | pass |" in block
    # not run: '-' with n 0, the goal still shown
    empty = render_block({"timings": {}, "benches": {}}, "run-20261207T160000Z.json")
    assert "| campaign_capacity | events lost @ 0.9x capacity | - | 0 | <= 0 | - |" in empty


def test_every_row_has_an_n_and_a_missing_figure_has_n_0() -> None:
    rows = summary_rows({})
    assert rows and all(row["n"] == 0 and row["value"] is None for row in rows)


def test_replace_readme_block_keeps_the_rest_of_the_readme() -> None:
    text = f"# title\n\nbefore\n{README_BEGIN}\nold table\n{README_END}\nafter\n"
    new = replace_readme_block(text, "new table")
    assert new == f"# title\n\nbefore\n{README_BEGIN}\nnew table\n{README_END}\nafter\n"
    assert readme_block(new) == "new table"
    with pytest.raises(SystemExit, match="markers"):
        replace_readme_block("no markers here", "x")
