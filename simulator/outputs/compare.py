"""A run against a baseline: per metric, the change and whether it is a regression beyond the tolerance.

Direction comes from simulator.metrics.metric_table.METRICS (`lower_is_better`): a latency or a loss count regresses
when it grows by more than `tolerance` (a fraction of the baseline), a rate when it shrinks by more. A
baseline of 0 for a lower-is-better metric (lost events...) regresses on any increase: a relative tolerance of
nothing is nothing. Missing values on either side are "n/a", never a pass or a failure of their own. An
environment mismatch (CPU model/count, Python, transport, broker: simulator.outputs.baseline.ENV_KEYS) is
reported as a "comparison across unlike machines" warning; the caller decides whether it fails
(`--strict-env`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.errors import UsageError
from simulator.metrics.json_tree import JsonValue
from simulator.metrics.metric_table import METRICS, metric_value
from simulator.metrics.run_summary import RunSummary
from simulator.outputs.baseline import ENV_KEYS, Baseline, environment_of

__all__ = ["Comparison", "MetricRow", "compare_run", "format_markdown", "parse_tolerance"]

OK, REGRESSION, IMPROVED, NA = "ok", "REGRESSION", "improved", "n/a"


@dataclass(frozen=True)
class MetricRow:
    metric: str
    unit: str
    baseline: float | None
    run: float | None
    delta_pct: float | None  # (run - baseline) / baseline * 100; None when not computable
    verdict: str


@dataclass
class Comparison:
    rows: list[MetricRow]
    tolerance: float  # fraction, 0.1 = 10 %
    env_mismatches: list[tuple[str, JsonValue, JsonValue]] = field(default_factory=list)  # (key, base, run)

    @property
    def regressions(self) -> list[MetricRow]:
        return [r for r in self.rows if r.verdict == REGRESSION]


def parse_tolerance(text: str) -> float:
    """ "10%" or "10" -> 0.10; "0.1" (a fraction, < 1 without %) -> 0.1."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100.0
        else:
            number = float(raw)
            value = number if number < 1 else number / 100.0
    except ValueError:
        raise UsageError(f"--tolerance: expected a percentage like 10% , got {text!r}") from None
    if not 0 <= value < 10:
        raise UsageError(f"--tolerance: must be 0%..1000%, got {text!r}")
    return value


def _judge(
    base: float | None,
    run: float | None,
    lower_is_better: bool,
    tolerance: float,
) -> tuple[float | None, str]:
    if base is None or run is None:
        return None, NA
    worse = run - base if lower_is_better else base - run  # > 0: moved the bad way
    if base == 0:
        delta = 0.0 if run == 0 else None
        if worse > 0:
            return delta, REGRESSION
        return delta, OK if worse == 0 else IMPROVED
    delta = (run - base) / abs(base) * 100.0
    if worse > tolerance * abs(base):
        return delta, REGRESSION
    if worse < -tolerance * abs(base):
        return delta, IMPROVED
    return delta, OK


def compare_run(
    baseline: Baseline,
    summary: RunSummary,
    tolerance: float = 0.10,
    metrics: Sequence[str] | None = None,
) -> Comparison:
    names = list(metrics) if metrics else list(METRICS)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise UsageError(f"--metric: unknown {', '.join(unknown)} (known: {', '.join(sorted(METRICS))})")
    base_metrics = baseline.metrics
    rows = []
    for name in names:
        spec = METRICS[name]
        base_value = base_metrics.get(name)
        base = float(base_value) if isinstance(base_value, int | float) else None
        run = metric_value(summary, name)
        delta, verdict = _judge(base, run, spec.lower_is_better, tolerance)
        rows.append(MetricRow(name, spec.unit, base, run, delta, verdict))
    base_env = baseline.environment
    run_env = environment_of(summary)
    mismatches = [
        (key, base_env.get(key), run_env.get(key))
        for key in ENV_KEYS
        if base_env.get(key) != run_env.get(key)
    ]
    return Comparison(rows=rows, tolerance=tolerance, env_mismatches=mismatches)


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


def _delta(row: MetricRow) -> str:
    if row.delta_pct is None:
        return "n/a" if row.verdict == NA else ("+∞" if row.verdict == REGRESSION else "–")
    return f"{row.delta_pct:+.1f}%"


def format_markdown(comparison: Comparison, baseline_name: str = "baseline", run_name: str = "run") -> str:
    """A GitHub-flavoured markdown report: the table, then environment warnings, then the verdict."""
    lines = [f"| metric | {baseline_name} | {run_name} | delta % | verdict |", "|---|---:|---:|---:|---|"]
    for row in comparison.rows:
        unit = f" ({row.unit})" if row.unit else ""
        verdict = f"**{row.verdict}**" if row.verdict == REGRESSION else row.verdict
        lines.append(
            f"| {row.metric}{unit} | {_num(row.baseline)} | {_num(row.run)} | {_delta(row)} | {verdict} |"
        )
    lines.append("")
    if comparison.env_mismatches:
        lines.append(
            "> **Warning: comparison across unlike machines** -- these differ, so the numbers may too:"
        )
        for key, base, run in comparison.env_mismatches:
            lines.append(f"> - {key}: baseline `{base}`, run `{run}`")
        lines.append("")
    regressions = comparison.regressions
    tol = f"{comparison.tolerance * 100:g}%"
    if regressions:
        names = ", ".join(r.metric for r in regressions)
        lines.append(f"**{len(regressions)} regression(s) beyond {tol}:** {names}")
    else:
        lines.append(f"No regression beyond {tol}.")
    return "\n".join(lines) + "\n"
