"""`fleetsim compare RUN --baseline FILE`: the run against a baseline (markdown); exit 1 on regression.

    fleetsim compare results/<run> --baseline results/baselines/ci-regression.json --tolerance 10%
    fleetsim compare results/<run> --baseline B.json --metric ack_latency_p99_ms --metric lost --out diff.md

Exit: 0 no regression beyond the tolerance; 1 a regression (or, with --strict-env, unlike machines);
2 bad input. An environment mismatch is otherwise a warning in the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["HELP", "add_arguments", "run"]

HELP = "compare a run with a baseline (markdown table; exit 1 on a regression beyond the tolerance)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory")
    parser.add_argument("--baseline", required=True, help="baseline JSON (fleetsim baseline RUN --out FILE)")
    parser.add_argument(
        "--tolerance", default="10%", help="allowed change in the bad direction (default 10%%)"
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        help="compare only this metric (repeatable; default: every metric)",
    )
    parser.add_argument(
        "--strict-env", action="store_true", help="fail (exit 1) when the environments differ"
    )
    parser.add_argument(
        "--out", help="also write the markdown report to this file (e.g. for a CI job summary)"
    )


def run(args: argparse.Namespace) -> int:
    from simulator.outputs.baseline import read_baseline, read_run_summary
    from simulator.outputs.compare import compare_run, format_markdown, parse_tolerance

    tolerance = parse_tolerance(args.tolerance)
    baseline = read_baseline(args.baseline)
    summary = read_run_summary(args.run)
    comparison = compare_run(baseline, summary, tolerance, args.metric or None)
    text = format_markdown(
        comparison,
        baseline_name=f"baseline ({baseline.scenario})",
        run_name=f"run ({summary.scenario})",
    )
    if baseline.scenario != summary.scenario:
        text += (
            f"\n> Note: the baseline is of scenario `{baseline.scenario}`, the run of "
            f"`{summary.scenario}`.\n"
        )
    if summary.verdict != "ok":
        text += f"\n> Note: the run's verdict is `{summary.verdict}` ({'; '.join(summary.verdict_reasons)}).\n"
    if baseline.verdict not in (None, "ok"):
        text += f"\n> Note: the baseline's verdict was `{baseline.verdict}`: it is not a healthy reference.\n"
    if summary.latency_trustworthy is False:
        text += (
            "\n> Note: the generator was saturated in this run; its latencies are not the backend's "
            f"({summary.latency_untrusted_reason or 'see summary.json'}).\n"
        )
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if comparison.regressions:
        return 1
    if args.strict_env and comparison.env_mismatches:
        print("fleetsim compare: --strict-env: comparison across unlike machines", file=sys.stderr)
        return 1
    return 0
