"""The benchmark table's rows, from the result documents of ONE run_all invocation (bench/run_all.py).

Every row has n: how many samples its value is the median of (alternating rounds, or delay phases per side),
1 for a figure from one run. A benchmark whose document is missing (failed, or not run in that invocation)
gives its rows with value '-', n 0.
"""

from __future__ import annotations

from typing import Any

from bench.campaign_figures import GOALS as CAMPAIGN_GOALS
from bench.common import check_goal

__all__ = ["COLUMNS", "summary_rows"]

COLUMNS = ["benchmark", "metric", "value", "n", "goal", "result"]


def _get(doc: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _count(values: Any) -> int:
    return sum(1 for v in values if v is not None)


def _throughput(tp: dict[str, Any], row: Any) -> None:
    summary = _get(tp, "summary") or {}
    top = max(summary, key=int) if summary else None
    goals = _get(tp, "goals") or {}
    for name in ("engine/mqttuser", "engine/paho"):
        block = goals.get(name) or {}
        row("throughput", f"{name} events per CPU-second ratio @ {block.get('devices', 1000)} devices",
            block.get("value"), block.get("n", 0), block.get("goal") or (">= 2.0" if "mqttuser" in name else ">= 0.7"))
    if top is not None:
        for name in ("lean/mqttuser", "lean/paho"):
            value = _get(summary, top, "cpu_ratios", name)
            if value is not None:
                row("throughput", f"{name} events per CPU-second ratio @ {top} devices", value,
                    _get(summary, top, "ratio_n", name) or 0, None)
    for size, block in sorted(summary.items(), key=lambda kv: int(kv[0])):
        for system, per in block.get("systems", {}).items():
            if per.get("runs") == 0:
                continue  # not attempted at this size (a failed run has runs > 0 and shows '-')
            row("throughput", f"{system} events/s @ {size} devices", per.get("events_per_s_median"),
                per.get("n", 0), None)
    if top is not None:
        for system, per in summary[top].get("systems", {}).items():
            if per.get("runs") == 0:
                continue
            row("throughput", f"{system} events per CPU-second @ {top} devices", per.get("events_per_cpu_s_median"),
                per.get("n_cpu", 0), None)


def _latency_truth(lt: dict[str, Any], row: Any) -> None:
    delay = _get(lt, "proxy", "delay_ms") or "-"
    phases = _get(lt, "proxy", "phases") or []
    per_side = min(_count(p.get("p50_ms") for p in phases if p.get("delay_ms") == 0),
                   _count(p.get("p50_ms") for p in phases if p.get("delay_ms") != 0)) if phases else 0
    rec_phases = _get(lt, "proxy", "pubrec_phases") or []
    rec_side = min(_count(p.get("p50_ms") for p in rec_phases if p.get("delay_ms") == 0),
                   _count(p.get("p50_ms") for p in rec_phases if p.get("delay_ms") != 0)) if rec_phases else 0
    for key, label, n in (("proxy_difference_ms", "PUBCOMP", per_side), ("pubrec_difference_ms", "PUBREC", rec_side)):
        block = _get(lt, "goals", key) or {}
        row("latency_truth", f"publish->{label} p50(D) - p50(0) ms, D = {delay} ms (n = phases per side)",
            block.get("value"), n, block.get("goal"))
    for key, block in sorted((_get(lt, "goals") or {}).items()):
        if key.startswith("locust_vs_plain_"):
            size = str(block.get("devices"))
            runs = _get(lt, "compare", size, "runs") or {}
            n = min((_count((r.get("ack_ms") or {}).get("p50") for r in rs) for rs in runs.values()), default=0)
            row("latency_truth", f"Locust - plain p50 ms @ {size} devices", block.get("value"), n,
                block.get("goal"))


def _campaign_capacity(cc: dict[str, Any], row: Any) -> None:
    """Issue 16's rows: a campaign where every OTA operation reboots, 1,000 devices (bench/campaign_capacity.py).
    Values and n come from the document's `goals` (the benchmark's own medians), never recomputed here."""
    goals = _get(cc, "goals") or {}
    devices = _get(cc, "devices") or 1000
    rate_at = {f: _get(goals, key, "rate") for f, key in (("0.9", "lost_at_0.9"), ("1.5", "lost_at_1.5"))}

    def at(factor: str) -> str:
        rate = rate_at[factor]
        return f"{factor}x capacity" + (f" ({rate:g} operations/s)" if isinstance(rate, (int, float)) else "")

    # The sizes and the rate in the label: a --quick row (200 and 400 operations) and a full-size one (400 and
    # 800) are different measurements; whether the per-operation cost depends on the sizes is not settled
    # (one pair of 200 and 400 gave 4.45, 5.9 and 12.1 ms in three invocations on a loaded machine).
    sizes, rate = _get(cc, "params", "operations"), _get(cc, "params", "rate")
    how = (f"{sizes[0]} and {sizes[1]} operations at {rate:g}/s, " if isinstance(sizes, list) and len(sizes) == 2
           and isinstance(rate, (int, float)) else "")
    for key, metric in (
        ("cpu_ms_per_operation",
         f"CPU ms per rebooting operation @ {devices} devices ({how}median of pair differences)"),
        ("operations_per_core_s", "rebooting operations per generator core-second"),
        ("engine_vs_floor_cpu", "engine / bare-paho CPU per rebooting operation"),
        ("lost_at_0.9", f"events lost @ {at('0.9')}"),
        ("lost_at_1.5", f"events lost @ {at('1.5')}"),
        ("late_or_dropped_at_1.5", f"late + dropped operations reported @ {at('1.5')}"),
        ("send_lag_p99_ms_at_1.5", f"send lag p99 ms @ {at('1.5')}"),
        ("pairs_behind_schedule", "measuring pairs with a run behind its plan (starved: its CPU figure flatters)"),
        ("engine_vs_issue_base_cpu", "CPU per rebooting operation / the code issue 16 measured (d260b63), "
                                     "pair by pair, same invocation"),
    ):
        block = goals.get(key) or {}
        row("campaign_capacity", metric, block.get("value"), block.get("n", 0), block.get("goal", CAMPAIGN_GOALS[key]))


def summary_rows(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The table, from one invocation's documents (missing documents give '-' rows)."""
    rows: list[dict[str, Any]] = []

    def row(bench: str, metric: str, value: Any, n: int, goal: str | None) -> None:
        present = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = check_goal(value, goal) if goal and present else None
        rows.append({"benchmark": bench, "metric": metric, "value": value if present else None,
                     "n": n if present else 0, "goal": goal or "", "result": ok})

    _throughput(docs.get("throughput", {}), row)
    dpp = docs.get("devices_per_process", {})
    one = 1 if dpp else 0
    row("devices_per_process", "devices connected (goal at full size)", _get(dpp, "connect", "connected"), one,
        ">= 10000")
    row("devices_per_process", "RSS per device (KB)", _get(dpp, "rss", "per_device_kb"), one, "<= 50")
    row("devices_per_process", "connects per second (cached credentials)", _get(dpp, "connect", "per_s"), one, None)
    pacing = docs.get("pacing", {})
    at = _get(pacing, "goals", "at_rate") or "-"
    row("pacing", f"achieved rate error % @ {at} events/s", _get(pacing, "goals", "rate_error_pct", "value"),
        1, "abs <= 1.0")
    row("pacing", f"send lag p99 ms @ {at} events/s", _get(pacing, "goals", "send_lag_p99_ms", "value"), 1, "<= 5.0")
    _latency_truth(docs.get("latency_truth", {}), row)
    so = docs.get("scale_out", {})
    runs = _get(so, "runs") or []
    so_n = min(_count(r.get("acked_eps") for r in runs if r.get("processes") == p) for p in (1, 2)) if runs else 0
    row("scale_out", "2 workers / 1 process acked events/s", _get(so, "goals", "two_workers_over_one", "value"),
        so_n, ">= 1.7")
    prof = _get(docs.get("profile_hot_path", {}), "top_self") or []
    if prof:
        frame, pct = prof[0]
        system = _get(docs.get("profile_hot_path", {}), "system") or "lean"
        row("profile_hot_path", f"{system}: top self frame % of samples: {frame}", pct, 1, None)
    _campaign_capacity(docs.get("campaign_capacity", {}), row)
    return rows
