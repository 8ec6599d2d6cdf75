"""Every benchmark in one go, then one table: metric, value, goal, pass/fail.

    python bench/run_all.py --quick            # all of them in about 10-15 minutes
    python bench/run_all.py                    # full sizes (much longer; a quiet machine)
    python bench/run_all.py --table-only       # rebuild the table from bench/results/*.json, run nothing
    python bench/run_all.py --table-only --markdown    # the README's table

Each benchmark runs as its own process (bench/<name>.py, `--quick` passed through) and leaves
bench/results/<name>.json; devices_per_process.py only prints, so its stdout is saved here. The table reads
those files; bench/results/summary.json holds the rows plus the host's load. A benchmark that fails leaves
its rows empty ("-"), the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, ROOT, check_goal, host_info, markdown_table, save_result, text_table

__all__ = ["BENCHES", "main", "summary_rows"]

# name -> (script, extra args for --quick, extra args for a full run)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "throughput": ("throughput.py", ["--quick"], []),
    # 10,000 devices even in --quick (the goal's size, ~1.5 min); 0.1 OTAEvent/s each = 1,000 events/s,
    # a load one process carries with room to spare, so the latency is the connections', not a backlog's.
    "devices_per_process": (
        "devices_per_process.py",
        ["--devices", "10000", "--rate", "0.1", "--duration", "10"],
        ["--devices", "10000", "--rate", "0.1", "--duration", "30"],
    ),
    "pacing": ("pacing.py", ["--quick"], []),
    "latency_truth": ("latency_truth.py", ["--quick"], []),
    "scale_out": ("scale_out.py", ["--quick"], []),
    "profile_hot_path": ("profile_hot_path.py", ["--seconds", "5"], []),
}
COLUMNS = ["benchmark", "metric", "value", "goal", "result"]


def _load(name: str) -> dict[str, Any]:
    path = RESULTS_DIR / f"{name}.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc


def _get(doc: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def summary_rows(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The table, from the benchmarks' JSON documents (missing documents give '-' rows)."""
    rows: list[dict[str, Any]] = []

    def row(bench: str, metric: str, value: Any, goal: str | None) -> None:
        ok = check_goal(value, goal) if goal and isinstance(value, (int, float)) else None
        rows.append({"benchmark": bench, "metric": metric, "value": value, "goal": goal or "", "result": ok})

    tp = docs.get("throughput", {})
    for name, goal in (("lean/mqttuser", ">= 2.0"), ("lean/paho", ">= 0.8")):
        block = _get(tp, "goals", name) or {}
        row(
            "throughput",
            f"{name} events/s ratio @ {block.get('devices', 1000)} devices",
            block.get("value"),
            goal,
        )
    for size, block in (_get(tp, "summary") or {}).items():
        for system, per in block.get("systems", {}).items():
            row("throughput", f"{system} events/s @ {size} devices", per.get("events_per_s_median"), None)
    dpp = docs.get("devices_per_process", {})
    row(
        "devices_per_process",
        "devices connected (goal at full size)",
        _get(dpp, "connect", "connected"),
        ">= 10000",
    )
    row("devices_per_process", "RSS per device (KB)", _get(dpp, "rss", "per_device_kb"), "<= 50")
    row("devices_per_process", "connects per second (cached credentials)", _get(dpp, "connect", "per_s"), None)
    pacing = docs.get("pacing", {})
    at = _get(pacing, "goals", "at_rate")
    row(
        "pacing",
        f"achieved rate error % @ {at} events/s",
        _get(pacing, "goals", "rate_error_pct", "value"),
        "abs <= 1.0",
    )
    row(
        "pacing",
        f"send lag p99 ms @ {at} events/s",
        _get(pacing, "goals", "send_lag_p99_ms", "value"),
        "<= 5.0",
    )
    lt = docs.get("latency_truth", {})
    proxy_goal = _get(lt, "goals", "proxy_difference_ms") or {}
    row(
        "latency_truth",
        f"publish->PUBCOMP p50(D) - p50(0) ms, D = {_get(lt, 'proxy', 'delay_ms')} ms",
        proxy_goal.get("value"),
        proxy_goal.get("goal"),
    )
    rec_goal = _get(lt, "goals", "pubrec_difference_ms") or {}
    row(
        "latency_truth",
        f"publish->PUBREC p50(D) - p50(0) ms, D = {_get(lt, 'proxy', 'delay_ms')} ms",
        rec_goal.get("value"),
        rec_goal.get("goal"),
    )
    for key, block in sorted((_get(lt, "goals") or {}).items()):
        if key.startswith("locust_vs_plain_"):
            row(
                "latency_truth",
                f"Locust - plain p50 ms @ {block.get('devices')} devices",
                block.get("value"),
                block.get("goal"),
            )
    so = docs.get("scale_out", {})
    row(
        "scale_out",
        "2 workers / 1 process acked events/s",
        _get(so, "goals", "two_workers_over_one", "value"),
        ">= 1.7",
    )
    prof = _get(docs.get("profile_hot_path", {}), "top_self") or []
    if prof:
        frame, pct = prof[0]
        row("profile_hot_path", f"top self frame: {frame}", pct, None)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, ~15 minutes in all")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    ap.add_argument("--table-only", action="store_true", help="run nothing; table from existing results")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown (README)")
    args = ap.parse_args()
    chosen = [b for b in (args.only.split(",") if args.only else BENCHES) if b]
    timings: dict[str, Any] = {}
    if not args.table_only:
        for name in chosen:
            script, quick, full = BENCHES[name]
            cmd = [sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else full)]
            print(f"run_all: {name} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
            timings[name] = {"seconds": round(time.monotonic() - t0, 1), "exit": proc.returncode}
            if proc.returncode != 0:
                timings[name]["stderr_tail"] = proc.stderr[-1500:]
                print(f"run_all: {name} failed (exit {proc.returncode})", file=sys.stderr)
            elif name == "devices_per_process":  # it prints its JSON only
                try:
                    save_result(name, json.loads(proc.stdout))
                except ValueError:
                    timings[name]["error"] = "no JSON on stdout"
    docs = {name: _load(name) for name in BENCHES}
    rows = summary_rows(docs)
    save_result(
        "summary",
        {"bench": "summary", "quick": args.quick, "host": host_info(), "timings": timings, "rows": rows},
    )
    print(markdown_table(rows, COLUMNS) if args.markdown else text_table(rows, COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
