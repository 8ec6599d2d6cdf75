"""`fleetsim baseline RUN --out FILE`: keep a run's metrics as the reference for `fleetsim compare`.

The baseline (JSON, simulator.outputs.baseline) holds every metric of simulator.metrics.names.METRICS, the
environment fingerprint, the scenario and the seed. Commit it under results/baselines/.
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


def run(args: argparse.Namespace) -> int:
    from simulator.outputs.baseline import build_baseline, read_run_summary, write_baseline

    summary = read_run_summary(args.run)
    doc = build_baseline(summary, source=str(args.run))
    path = write_baseline(args.out, doc)
    known = sum(1 for v in doc["metrics"].values() if v is not None)
    print(
        f"baseline {path}: scenario {doc['scenario']}, seed {doc['seed']}, {known}/{len(doc['metrics'])}"
        " metrics"
    )
    if summary.get("latency_trustworthy") is False:
        print(
            "warning: the generator was saturated in this run; its latencies are not the backend's "
            f"({summary.get('latency_untrusted_reason') or 'see summary.json'})"
        )
    return 0
