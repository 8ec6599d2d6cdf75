"""Heap held for a responder/campaign run's answered operations on the process that writes the results.

Issue 14: that process kept every OperationRecord folded by (device, uuid) in a dict until the end
(`--store dict`, the code before simulator.metrics.operation_spool); it now keeps each device's last few in
memory and the rest in a CSV in the results root's spool, tallied as written (`--store spool`). This feeds
either with the records a run's workers would ship (closed operations, each device answering one after
another), no broker, and prints the Python heap they hold (tracemalloc after a full collection) once every
record is in, then the heap's peak while the campaign report is computed:

    python bench/operations_memory.py --devices 1000 --operations 100000 --store dict
    python bench/operations_memory.py --devices 1000 --operations 100000 --store spool
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.metrics.campaign import OperationRecord, campaign_report, fold_operations
from simulator.metrics.operation_spool import OperationSpool


def records(devices: int, operations: int) -> Iterator[OperationRecord]:
    """Operation k runs on device k % devices, requested 1 s after the previous one there (wall s)."""
    for k in range(operations):
        at = 1_700_000_000.0 + k // devices + (k % devices) / devices
        yield OperationRecord(f"device-{k % devices:06d}", f"{k:08x}-0000-4000-8000-000000000000", at, "Update",
                              1, 0, at + 0.05, at + 0.8, "Success", "", at + 0.79)


def held_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--store", choices=("dict", "spool"), default="spool")
    args = parser.parse_args()
    end = 1_700_000_000.0 + args.operations // args.devices + 2
    tracemalloc.start()
    base = held_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "dict":
            folded: dict[tuple[str, str], OperationRecord] = {}
            fold_operations(folded, records(args.devices, args.operations))
            held = held_bytes() - base
            tracemalloc.reset_peak()
            report = campaign_report(list(folded.values()), end=end)
        else:
            spool = OperationSpool(Path(tmp) / "spool")
            batch: list[OperationRecord] = []
            for record in records(args.devices, args.operations):
                batch.append(record)
                if len(batch) == args.devices:  # a report's worth
                    spool.add(batch)
                    batch = []
            spool.add(batch)
            held = held_bytes() - base
            tracemalloc.reset_peak()
            report = campaign_report(spool.close(), end=end, tally=spool.tally)
        peak = tracemalloc.get_traced_memory()[1] - base
    print(json.dumps({"store": args.store, "devices": args.devices, "operations": args.operations,
                      "held_bytes": held, "report_peak_bytes": peak, "answered": report.answered,
                      "request_to_final_p99_ms": report.request_to_final.p99_ms}))


if __name__ == "__main__":
    main()
