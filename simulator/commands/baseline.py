"""`fleetsim baseline RUN --out FILE`: keep a run's metrics as the reference for `fleetsim compare`.

The baseline (JSON, simulator.outputs.baseline) holds every metric of simulator.metrics.names.METRICS, the
environment fingerprint, the scenario and the seed. Commit it under results/baselines/.
A run whose verdict is not `ok` (saturated generator, lost events, incomplete...) would make every later
comparison look like an improvement, so it is refused (exit 2) unless `--force`.
"""

from __future__ import annotations

import argparse

__all__ = ["HELP", "add_arguments", "run"]

HELP = "save a run's metrics as a baseline JSON file (for fleetsim compare)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN", help="run directory, e.g. results/20260101T120000Z-ci-regression"
    )
    parser.add_argument(
        "--out", "-o", required=True, help="baseline file to write, e.g. results/baselines/ci.json"
    )
    parser.add_argument("--force", action="store_true", help="keep a run whose verdict is not ok as the baseline")


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError
    from simulator.outputs.baseline import build_baseline, read_run_summary, write_baseline

    summary = read_run_summary(args.run)
    if summary.verdict != "ok" and not args.force:
        why = "; ".join(summary.verdict_reasons) or "see its summary.json"
        raise UsageError(f"{args.run}: verdict: {summary.verdict} ({why}); a baseline must come from a healthy "
                         "run (--force keeps it anyway)")
    doc = build_baseline(summary, source=str(args.run))
    path = write_baseline(args.out, doc)
    metrics = doc.metrics
    known = sum(1 for v in metrics.values() if v is not None)
    print(f"baseline {path}: scenario {summary.scenario}, seed {summary.seed}, {known}/{len(metrics)} metrics"
          + (f" (verdict {summary.verdict}, kept with --force)" if summary.verdict != "ok" else ""))
    if summary.latency_trustworthy is False:
        print(
            "warning: the generator was saturated in this run; its latencies are not the backend's "
            f"({summary.latency_untrusted_reason or 'see summary.json'})"
        )
    return 0
